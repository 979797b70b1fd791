import Glibc
import PacketCapture
import PacketFiles
import PacketWire
import Render
import SystemCalls

/// What `capture` does with a live capture: the packets through a ``PacketPipeline`` (lines, JSON Lines) or into a
/// pcapng file, until a count, a stop request, or a failure.
public struct LiveReadingOptions: Sendable {
    public var mode: PipelineMode = .lines(.text)
    public var text = PacketText()
    /// Stop after this many packets.
    public var count: Int?
    /// Write the packets to this pcapng file ("-" for standard output) instead of printing them.
    public var pcapngPath: String?
    /// The interface's name, for the pcapng file.
    public var interfaceName: String?
    /// Report the count on standard error while writing a file (a person watches a terminal).
    public var progress = false

    public init() {}
}

/// How a live reading ended.
public struct LiveReadingResult: Sendable {
    /// Packets taken from the kernel.
    public var captured: Int
    /// The kernel's counters at the end.
    public var statistics: CaptureStatistics?
    /// Set when the output went away or failed (the packets captured until then were handled).
    public var outputError: OutputError?
    /// Set when the pcapng file could not be written.
    public var pcapngError: CaptureFileError?
    /// Set when the capture itself failed.
    public var captureError: CaptureError?
}

/// `packetflow capture`'s engine. Packets come in the kernel's blocks, or one by one in immediate mode; between
/// them the loop sleeps in poll(2) on the capture and on `stop`, a descriptor that becomes readable when the reading
/// should end (the CLI's Ctrl-C self-pipe). After a stop request, the packets the kernel already holds are still
/// handed over: one buffering timeout more, for the kernel to retire its last block.
public struct LiveReading {
    public let capture: LiveCapture
    public let options: LiveReadingOptions

    public init(capture: LiveCapture, options: LiveReadingOptions) {
        self.capture = capture
        self.options = options
    }

    /// Reads until the count, a stop request or a failure, then closes the capture (and the pcapng file).
    public func run(sink: OutputSink, stop: FileDescriptor) -> LiveReadingResult {
        var result = LiveReadingResult(captured: 0)
        var writer: PcapngWriter?
        if let path = options.pcapngPath {
            do throws(CaptureFileError) {
                writer = try PcapngWriter(path: path)
                try writer?.addInterface(linkType: capture.linkType, name: options.interfaceName)
            } catch {
                result.pcapngError = error
                capture.close()
                return result
            }
        }
        // libpcap already applied the filter in the kernel.
        var pipeline = PacketPipeline(mode: options.mode, text: options.text, filter: nil, count: nil, sink: sink)
        capture.setNonblocking(true)
        let limit = options.count ?? Int.max
        let source = LivePackets(capture)
        var captured = 0
        // Set once a stop was requested: the packets that arrived before it are still handed over, until then.
        var stopAt: UInt64?
        loop: while captured < limit && result.pcapngError == nil && result.outputError == nil {
            source.batch = Int32(clamping: min(limit - captured, 1 << 16))
            let before = captured
            do {
                _ = try source.readPackets { record in
                    guard captured < limit else { return false }
                    captured += 1
                    if let writer {
                        do throws(CaptureFileError) {
                            try writer.writePacket(
                                record.bytes, timestamp: record.info.timestamp,
                                originalLength: record.info.originalLength)
                        } catch {
                            result.pcapngError = error
                            return false
                        }
                    } else {
                        do throws(ReadError) {
                            try pipeline.handle(frame: record.frameNumber, info: record.info, bytes: record.bytes)
                        } catch {
                            if case .output(let e) = error {
                                result.outputError = e
                                return false
                            }
                        }
                    }
                    return true
                }
            } catch let error as CaptureError {
                result.captureError = error
                break loop
            } catch {
                result.captureError = CaptureError(.other, "\(error)")
                break loop
            }
            let delivered = captured - before
            if delivered > 0 {
                do throws(OutputError) { try pipeline.flush() } catch { result.outputError = error }
                if writer != nil, options.progress { progress("\(captured) packets\r") }
            }
            let now = monotonicNanoseconds()
            if let stopAt {
                // After a stop: until the ring is empty (immediate mode) or the last block's timeout has passed.
                if now >= stopAt || (delivered == 0 && capture.options.immediate) { break }
                if delivered == 0 { _ = capture.wait(timeoutMilliseconds: Int32(clamping: (stopAt - now) / 1_000_000)) }
                continue
            }
            // Sleep only when nothing was ready (at most a second); either way, see whether a stop came.
            if capture.wait(timeoutMilliseconds: delivered > 0 ? 0 : 1000, wake: stop.rawValue).woken {
                let grace = capture.options.immediate ? 0 : UInt64(capture.options.readTimeoutMilliseconds) + 20
                stopAt = now + grace * 1_000_000
            }
        }
        if result.outputError == nil {
            do throws(OutputError) { try pipeline.flush() } catch { result.outputError = error }
        }
        result.captured = captured
        result.statistics = capture.statistics()
        if let writer {
            writer.setStatistics(
                interface: 0, received: result.statistics?.received, dropped: result.statistics?.droppedByKernel)
            do throws(CaptureFileError) { try writer.close() } catch {
                result.pcapngError = result.pcapngError ?? error
            }
        }
        capture.close()
        return result
    }
}
