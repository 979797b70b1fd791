import Glibc

/// The few file-system reads the lab and the tracer make of /proc and /run: a directory's names, a symbolic
/// link's target, a small text file. One implementation each, without Foundation.
public enum ProcFiles {
    /// /proc/PID/comm: the process's command name, as ps shows it; nil when it is gone.
    public static func command(of pid: Int32) -> String? {
        contents("/proc/\(pid)/comm")?.split(separator: "\n").first.map(String.init)
    }

    /// The names in a directory, without "." and ".."; empty when it cannot be opened.
    public static func names(in path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var out: [String] = []
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { out.append(name) }
        }
        return out
    }

    /// Where a symbolic link points ("socket:[1234]" for /proc/PID/fd/N), or nil.
    public static func linkTarget(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A whole file read as UTF-8 (a /proc table), or nil when it cannot be opened.
    public static func contents(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        return String(decoding: data, as: UTF8.self)
    }
}
