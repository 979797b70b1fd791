import SyscallTrace
import Testing

@Suite struct PythonHookOptionTests {
    @Test(arguments: [
        (["python3", "-I", "client.py"], "-I"),
        (["python3", "-Es", "client.py"], "-E"),
        (["/usr/bin/python3.11", "-u", "-S", "client.py"], "-S"),
        (["python3", "-bI", "client.py"], "-I"),
        (["python3", "-X", "dev", "-E", "client.py"], "-E"),
        (["python3", "-Wignore", "-I", "client.py"], "-I"),
    ])
    func optionsThatKeepTheHookOutAreFound(command: [String], option: String) {
        #expect(PythonHook.disablingOption(in: command) == option)
    }

    @Test(arguments: [
        ["python3", "client.py", "-I"],  // the script's own argument
        ["python3", "-c", "print(1)", "-E"],
        ["python3", "-m", "http.server", "-S"],
        ["python3", "-W", "ignore::DeprecationWarning", "client.py"],  // -W's value is not options
        ["python3", "-X", "importtime", "client.py"],
        ["python3", "-uc", "import sys; sys.argv", "-I"],
        ["python3"],
    ])
    func otherCommandLinesLoadIt(command: [String]) {
        #expect(PythonHook.disablingOption(in: command) == nil)
    }
}
