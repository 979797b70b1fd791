// whosent: which call put each packet on the wire, for any command, from Swift.
//   swift run whosent python3 client.py        (as root: ptrace and capture)
import Timeline
import Tracing

var options = TraceOptions()
options.command = Array(CommandLine.arguments.dropFirst())
options.environment = TraceSession.currentEnvironment()
let run = try TraceSession(options, warn: { print("warning:", $0) }).run()

let calls = Dictionary(uniqueKeysWithValues: run.calls.map { ($0.id, $0) })
for p in run.packets {
    var line = "#\(p.frame) \(p.proto) \(p.flags?.label ?? "") len=\(p.length): "
    if let reason = p.kernel {
        line += "the kernel (\(reason.text(.en)))"
    } else if let id = p.call, let call = calls[id] {
        line += "\(call.actor) #\(id) \(call.name)" + (call.source.map { " at \($0)" } ?? "")
    } else {
        line += "\(p.sender ?? "?") (not traced)"
    }
    print(line)
}
