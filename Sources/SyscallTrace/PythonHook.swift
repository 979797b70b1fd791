import Glibc
import Sockets
import SystemCalls

/// The start-up hook that makes CPython tell the tracer which line of the program made each socket call.
///
/// It is written as `sitecustomize.py` into a private temporary directory put first on PYTHONPATH, so the user's
/// script is untouched. Each thread gets a 1 KiB buffer (ctypes) whose address it announces once with a write of
/// "PFA address" to a descriptor number that is never open (negative); the tracer stops at that write(2), keeps the
/// address and turns the write into a no-op. Before each wrapped `socket.socket` method the hook puts
/// "file:line statement" into the buffer and empties it after, and the tracer reads the buffer at each socket call
/// it records: the line is exactly that of the method running on that thread, and costs no stop of its own.
/// Without ctypes the hook falls back to writing "PFN1 file:line statement" before and "PFN0" after each method.
public enum PythonHook {
    /// The descriptor number of the note writes: negative, so it can never collide with a real descriptor (an
    /// untraced run just gets EBADF, which the hook ignores).
    public static let noteFD: Int32 = -4242

    public static let source = #"""
        # PacketFlow trace hook (sitecustomize.py): tells the tracer which Python line made each socket call.
        import os as _pf_os
        import sys as _pf_sys

        def _pf_dash_c_command(argv):
            # The program text of `python -c CMD` (also `-Ic CMD`, `-cCMD`), as lines; None for a script or `-m`.
            # Options that take a value (-W, -X) may hide a "c" in it, so the letters are walked as CPython does.
            i = 1
            while i < len(argv):
                a = argv[i]
                if not a.startswith("-") or a == "-" or a == "--":
                    return None
                for j in range(1, len(a)):
                    letter = a[j]
                    if letter in "cmWX":
                        value = a[j + 1:]
                        if not value:
                            i += 1
                            value = argv[i] if i < len(argv) else ""
                        if letter == "c":
                            return value.splitlines()
                        if letter == "m":
                            return None
                        break
                i += 1
            return None

        def _pf_install():
            try:
                fd = int(_pf_os.environ.get("PACKETFLOW_NOTE_FD", ""))
            except ValueError:
                return
            import socket
            import linecache
            import threading
            try:
                import ctypes
            except ImportError:
                ctypes = None
            skip = {socket.__file__, __file__}
            state = threading.local()
            getframe = _pf_sys._getframe
            lines = {}  # (code object, instruction offset) -> b"file:line statement"
            command = _pf_dash_c_command(getattr(_pf_sys, "orig_argv", [])) if _pf_sys.argv[:1] == ["-c"] else None

            def note(data):
                try:
                    _pf_os.write(fd, data)
                except OSError:
                    pass

            def slot():
                # One buffer per thread, announced once; the tracer reads it at each socket call (no stop per note).
                buf = state.buf = ctypes.create_string_buffer(1024)
                note(b"PFA %d" % ctypes.addressof(buf))
                return buf

            def where():
                # The caller of the socket method, outside socket.py; its line is formatted once per instruction.
                f = getframe(2)
                while f is not None and f.f_code.co_filename in skip:
                    f = f.f_back
                if f is None:
                    return b""
                key = (f.f_code, f.f_lasti)
                line = lines.get(key)
                if line is None:
                    name = f.f_code.co_filename
                    text = linecache.getline(name, f.f_lineno).strip()
                    if not text and command is not None and name == "<string>" and 0 < f.f_lineno <= len(command):
                        text = command[f.f_lineno - 1].strip()  # python -c: the line of the command itself
                    line = "%s:%d" % (_pf_os.path.basename(name), f.f_lineno)
                    if text:
                        line += " " + text
                    line = line.encode("utf-8", "backslashreplace")[:1023]
                    if len(lines) < 65536:
                        lines[key] = line
                return line

            def wrap(name):
                original = getattr(socket.socket, name)

                if ctypes is not None:
                    def method(self, *args, **kwargs):
                        try:
                            buf = state.buf
                        except AttributeError:
                            buf = slot()
                        if buf[0] != b"\0":  # inside another socket method (accept calls __init__): its line stays
                            return original(self, *args, **kwargs)
                        buf.value = where()
                        try:
                            return original(self, *args, **kwargs)
                        finally:
                            buf[0] = b"\0"
                else:
                    def method(self, *args, **kwargs):
                        depth = getattr(state, "depth", 0)
                        if depth == 0:
                            note(b"PFN1 " + where())
                        state.depth = depth + 1
                        try:
                            return original(self, *args, **kwargs)
                        finally:
                            state.depth = depth
                            if depth == 0:
                                note(b"PFN0")

                method.__name__ = getattr(original, "__name__", name)
                method.__qualname__ = "socket." + name
                method.__doc__ = getattr(original, "__doc__", None)
                setattr(socket.socket, name, method)

            for name in ("__init__", "connect", "connect_ex", "bind", "listen", "accept", "send", "sendall",
                         "sendto", "sendmsg", "sendfile", "recv", "recv_into", "recvfrom", "recvfrom_into", "recvmsg",
                         "recvmsg_into", "shutdown", "close", "setsockopt", "getsockopt", "detach"):
                if hasattr(socket.socket, name):
                    wrap(name)

        def _pf_chain():
            # The sitecustomize this file shadows (one further on PYTHONPATH, or the distribution's, such as
            # Debian's /usr/lib/python3.X/sitecustomize.py) still runs, and is what `import sitecustomize` gives.
            import importlib.machinery
            import importlib.util
            here = _pf_os.path.dirname(_pf_os.path.abspath(__file__))
            rest = [p for p in _pf_sys.path if _pf_os.path.abspath(p or ".") != here]
            spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
            if spec is None or spec.loader is None:
                return
            module = importlib.util.module_from_spec(spec)
            _pf_sys.modules["sitecustomize"] = module
            spec.loader.exec_module(module)

        _pf_install()
        del _pf_install, _pf_dash_c_command
        _pf_chain()
        """#

    /// True when argv[0]'s basename looks like a Python interpreter (python, python3, python3.11).
    public static func applies(to command: [String]) -> Bool {
        guard let first = command.first else { return false }
        let base = first.split(separator: "/").last.map(String.init) ?? first
        return base.hasPrefix("python")
    }

    /// The interpreter option that keeps the hook from loading (`-I` and `-E` ignore PYTHONPATH, `-S` skips the
    /// site module that imports sitecustomize), or nil. Options end at the script, `-c` or `-m`.
    public static func disablingOption(in command: [String]) -> String? {
        var i = 1
        while i < command.count {
            let arg = command[i]
            guard arg.hasPrefix("-"), arg.count > 1, arg != "-c", arg != "-m" else { return nil }
            if arg.hasPrefix("--") {
                if arg == "--check-hash-based-pycs" { i += 1 }
            } else {
                for letter in arg.dropFirst() {
                    if letter == "I" || letter == "E" || letter == "S" { return "-\(letter)" }
                    // -W and -X take a value: the rest of this argument, or the next one.
                    if letter == "W" || letter == "X" {
                        if arg.count == 2 { i += 1 }
                        break
                    }
                    if letter == "c" || letter == "m" { return nil }
                }
            }
            i += 1
        }
        return nil
    }

    /// Where the hook's directory is made: $TMPDIR, or /tmp.
    public static var temporaryDirectory: String { Linux.temporaryDirectory }

    /// Writes the hook into a new private directory (mkdtemp(3) in ``temporaryDirectory``) and returns it (remove
    /// it with ``remove(_:)``).
    public static func install() -> String? {
        var template = Array("\(temporaryDirectory)/packetflow-hook.XXXXXX".utf8CString)
        guard let dir = mkdtemp(&template) else { return nil }
        let path = String(cString: dir)
        guard let f = fopen(path + "/sitecustomize.py", "w") else { return nil }
        fputs(source, f)
        fclose(f)
        return path
    }

    public static func remove(_ dir: String) {
        unlink(dir + "/sitecustomize.py")
        // Python may have left its bytecode cache next to the hook.
        let cache = dir + "/__pycache__"
        for name in ProcFiles.names(in: cache) { unlink(cache + "/" + name) }
        rmdir(cache)
        rmdir(dir)
    }

    /// The environment for a traced Python: the hook directory first, any user PYTHONPATH after it.
    public static func environment(_ base: [String: String], hookDirectory: String) -> [String: String] {
        var env = base
        if let user = base["PYTHONPATH"], !user.isEmpty {
            env["PYTHONPATH"] = hookDirectory + ":" + user
        } else {
            env["PYTHONPATH"] = hookDirectory
        }
        env["PACKETFLOW_NOTE_FD"] = String(noteFD)
        return env
    }
}
