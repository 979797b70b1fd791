import Foundation
import SystemCalls

/// What a finished child process left.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs `executable` to completion with `input` on stdin; kills it (SIGKILL) after `timeout` seconds.
///
/// Both output pipes are drained while the child runs, so a child that writes more than a pipe holds (Chromium's
/// DOM, tshark's fields) cannot deadlock against a parent that waits for it. SIGKILL, because a child started by
/// the test runner inherits its blocked signal mask and may ignore SIGTERM.
public func runProcess(
    _ executable: URL, _ arguments: [String], input: String? = nil, environment: [String: String]? = nil,
    timeout: TimeInterval = 120
) throws -> ProcessResult {
    let p = Process()
    p.executableURL = executable
    p.arguments = arguments
    if let environment {
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    }
    let out = Pipe()
    let err = Pipe()
    let inp = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = inp
    try p.run()
    let group = DispatchGroup()
    let collected = Collected()
    for (pipe, isOut) in [(out, true), (err, false)] {
        group.enter()
        DispatchQueue.global().async {
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            collected.set(data, stdout: isOut)
            group.leave()
        }
    }
    if let input { inp.fileHandleForWriting.write(Data(input.utf8)) }
    try inp.fileHandleForWriting.close()
    let pid = p.processIdentifier
    let killer = DispatchWorkItem { kill(pid, SIGKILL) }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
    p.waitUntilExit()
    killer.cancel()
    group.wait()
    return ProcessResult(status: p.terminationStatus, stdout: collected.stdout, stderr: collected.stderr)
}

private final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var out = Data(), err = Data()
    func set(_ data: Data, stdout: Bool) {
        lock.lock()
        if stdout { out = data } else { err = data }
        lock.unlock()
    }
    var stdout: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: out, as: UTF8.self)
    }
    var stderr: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: err, as: UTF8.self)
    }
}

/// The `packetflow` binary built next to the test bundle (swift test builds it with the tests).
public func packetflowBinary() -> URL {
    URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        .appendingPathComponent("packetflow")
}

/// The path of an installed tool (tshark, tcpdump, chromium), or nil.
public func installedTool(_ name: String) -> URL? {
    ["/usr/bin/", "/usr/sbin/", "/usr/local/bin/", "/bin/"].map { URL(fileURLWithPath: $0 + name) }
        .first { FileManager.default.isExecutableFile(atPath: $0.path) }
}

/// Reads a child's output `pipe` until a whole line containing `marker` has arrived (its newline too), or to its
/// end; returns all read. For the line a program prints once it is ready (it listens, it has its port), which can
/// arrive in pieces.
public func waitForLine(_ pipe: Pipe, containing marker: String = "") -> String {
    func complete(_ text: String) -> Bool {
        text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().contains {
            marker.isEmpty || $0.contains(marker)
        }
    }
    var seen = Data()
    while !complete(String(decoding: seen, as: UTF8.self)) {
        let chunk = pipe.fileHandleForReading.availableData
        if chunk.isEmpty { break }
        seen.append(chunk)
    }
    return String(decoding: seen, as: UTF8.self)
}

/// The first line a child writes to `pipe` (waiting for all of it), without its newline and surrounding spaces.
public func firstLine(_ pipe: Pipe) -> String {
    String(waitForLine(pipe).split(separator: "\n", omittingEmptySubsequences: false)[0])
        .trimmingCharacters(in: .whitespaces)
}

/// Waits (at most `seconds`) until a thread of process `pid` is blocked in one of the system calls `numbers` (x86_64
/// numbers: accept 43, accept4 288, recvfrom 45), as /proc/PID/task/TID/syscall shows, and asleep in it (state S:
/// a thread in a tracer's stop at the call's entry shows the number too, before the tracer has seen the call); true
/// when one is. For a test that must act while a call is in flight (attach, kill) rather than guess how long the
/// program takes to get there.
public func blockedInSyscall(_ pid: Int32, _ numbers: Set<Int>, within seconds: Double = 5) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    repeat {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        for tid in tasks {
            let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/syscall", encoding: .utf8)) ?? ""
            guard let first = text.split(separator: " ").first, let number = Int(first), numbers.contains(number)
            else { continue }
            let status = (try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/status", encoding: .utf8)) ?? ""
            if status.split(separator: "\n").contains(where: { $0.hasPrefix("State:\tS") }) { return true }
        }
        usleep(5_000)
    } while Date() < deadline
    return false
}

/// The count in `packetflow server`'s last message, "packetflow: stopped after N clients"; nil when it is missing.
public func stoppedAfter(_ messages: String) -> Int? {
    let line = messages.split(separator: "\n").first { $0.contains("stopped after") }
    let words = line?.split(separator: " ") ?? []
    return words.firstIndex(of: "after").flatMap { $0 + 1 < words.count ? Int(words[$0 + 1]) : nil }
}

/// A new private directory (mkdtemp(3)) in $TMPDIR or /tmp, named `packetflow-PREFIX.XXXXXX`; the caller removes it.
public func makeScratchDirectory(_ prefix: String) throws -> String {
    var template = Array("\(Linux.temporaryDirectory)/packetflow-\(prefix).XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw Errno(rawValue: errno) }
    return String(cString: made)
}

/// ``makeScratchDirectory(_:)`` as a URL, for a test's files (pages, captures).
public func scratchDirectory(_ name: String) throws -> URL {
    URL(fileURLWithPath: try makeScratchDirectory(name), isDirectory: true)
}

/// Polls `condition` every 5 ms for at most `within`; true once it holds.
public func waitUntil(within: Duration = .seconds(5), _ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + within
    while !condition() {
        if ContinuousClock.now >= deadline { return false }
        usleep(5_000)
    }
    return true
}
