import PacketCapture
import PacketFiles
import PacketWire
import Render
import SystemCalls
import Timeline

/// What to do with a list of capture files: `packetflow read`'s engine.
public struct ReadOptions: Sendable {
    /// Paths, or "-" for standard input, read in order.
    public var files: [String]
    public var mode: PipelineMode
    public var text = PacketText()
    /// A BPF filter, compiled per link type.
    public var filter: String?
    /// Stop after this many packets that pass the filter.
    public var count: Int?
    public var color = false
    public var language: Language = .en
    /// Write the packets that pass the filter and count to this pcapng file ("-" for standard output) instead of
    /// printing them, as `tcpdump -r IN -w OUT` (the mode is `.select` then).
    public var pcapngPath: String?
    /// Report progress on standard error every 262 144 packets (when a person watches a long read).
    public var progress = false
    /// Print only how many packets passed the filter (within `count`), as `tcpdump --count` does: "N packets"
    /// (the mode is `.select` then).
    public var countOnly = false

    public init(files: [String], mode: PipelineMode) {
        self.files = files
        self.mode = mode
    }
}

/// Why reading files stopped before the end.
public enum ReadFilesError: Error, CustomStringConvertible {
    case read(ReadError)
    /// A picture would hold more than ``PacketPipeline/pictureLimit`` packets.
    case pictureTooLarge(path: String, format: PipelineMode.PictureFormat)
    /// The `-w` output could not be written.
    case pcapng(CaptureFileError)

    public var description: String {
        switch self {
        case .read(let e): e.description
        case .pictureTooLarge(let path, let format):
            "\(path): \(format == .html ? "an HTML page" : "a Mermaid diagram") holds at most "
                + "\(PacketPipeline.pictureLimit) packets; pick a TCP stream (--stream N; "
                + "--conversations lists them) or a count (-c N)"
        case .pcapng(let e): e.description
        }
    }
}

/// Reads capture files through one ``PacketPipeline``: each file from its first packet (stream indexes start again
/// per file, as tshark numbers them), every valid record shown before a broken one is reported, and reading goes on
/// with the next file.
public struct CaptureFiles {
    public let options: ReadOptions

    public init(_ options: ReadOptions) { self.options = options }

    /// Reads every file. Lines and tables go to `sink` as they are made; a picture (Mermaid, HTML) is handed to
    /// `deliver` once its file is read; a file that goes bad is reported to `warn` in one line. Returns false when
    /// some file could not be read to its end.
    public func run(
        sink: OutputSink, deliver: (String) throws -> Void, warn: @escaping (String) -> Void
    ) throws -> Bool {
        let mode = options.mode
        var writer: PcapngWriter?
        if let path = options.pcapngPath {
            do throws(CaptureFileError) { writer = try PcapngWriter(path: path) } catch {
                throw ReadFilesError.pcapng(error)
            }
        }
        var pipeline = PacketPipeline(
            mode: mode, text: options.text, filter: options.filter, count: options.count, color: options.color,
            language: options.language, sink: sink, warn: warn)
        var failed = false
        for path in options.files {
            if pipeline.done { break }
            pipeline.reset()
            if case .flow(nil, nil) = mode, path != "-" { pipeline.streamEnds = Self.streamEnds(of: path) }
            do {
                let reader = try CaptureFileReader(path: path)
                // Whole-file conditions (a link type that is not decoded), one line each, once the file is done.
                defer { reader.warnings.forEach { warn($0) } }
                var handleError: Error?
                // -w: each input interface becomes an interface of the output, described when first used.
                var outputInterface: [Int: Int] = [:]
                _ = try reader.readPackets { record in
                    do {
                        let selected = try pipeline.handle(
                            frame: record.frameNumber, info: record.info, bytes: record.bytes,
                            comments: record.comments)
                        if selected, let writer {
                            // A failure here is the output's (a full disk), not the input's: it ends the run.
                            do throws(CaptureFileError) {
                                let index = record.info.interfaceIndex
                                if outputInterface[index] == nil {
                                    let described =
                                        reader.interfaces.indices.contains(index)
                                        ? reader.interfaces[index] : nil
                                    outputInterface[index] = try writer.addInterface(
                                        linkType: record.info.linkType, snapLength: described?.snapLength ?? 0,
                                        name: described?.name)
                                }
                                try writer.writePacket(
                                    record.bytes, timestamp: record.info.timestamp,
                                    originalLength: record.info.originalLength, interface: outputInterface[index]!,
                                    comments: record.comments)
                            } catch {
                                throw ReadFilesError.pcapng(error)
                            }
                        }
                    } catch let error as ReadError {
                        handleError = ReadFilesError.read(error)
                        return false
                    } catch {
                        handleError = error
                        return false
                    }
                    if options.progress, record.frameNumber & 0x3_FFFF == 0 {
                        progress("\(reader.path): \(record.frameNumber) packets\r")
                    }
                    return !pipeline.done
                }
                if let handleError {
                    // What the filter let through before libpcap refused it for this file's link type still goes out.
                    if case ReadFilesError.read(.filter) = handleError { try? pipeline.flush() }
                    throw handleError
                }
                if pipeline.pictureTooLarge, case .flow(_, let format?) = mode {
                    throw ReadFilesError.pictureTooLarge(path: path, format: format)
                }
                if options.progress { progress("\u{1b}[2K") }
                do throws(OutputError) {
                    try pipeline.finishFile(title: "packetflow read — \(path)")
                } catch {
                    throw ReadFilesError.read(.output(error))
                }
                if let picture = pipeline.picture { try deliver(picture) }
            } catch let error as CaptureFileError {
                // Every valid record has been shown; say where the file went bad.
                do throws(OutputError) { try pipeline.finishFile() } catch { throw ReadFilesError.read(.output(error)) }
                warn(error.description)
                failed = true
            }
        }
        if let writer {
            do throws(CaptureFileError) { try writer.close() } catch { throw ReadFilesError.pcapng(error) }
        }
        if options.countOnly {
            let n = pipeline.printed
            do throws(OutputError) {
                try sink.write(countLine(n))
            } catch {
                throw ReadFilesError.read(.output(error))
            }
        }
        return !failed
    }

    /// The last frame of each TCP stream of a capture file, numbered as the pipeline numbers them; as far as the
    /// file is readable (the reading pass reports where it is not). With it the terminal flow diagrams of every
    /// stream are printed as soon as a stream and all before it are complete.
    public static func streamEnds(of path: String) -> [Int] {
        var ends: [Int] = []
        var builder = PacketEventBuilder()
        guard let reader = try? CaptureFileReader(path: path) else { return [] }
        _ = try? reader.forEachPacket { record in
            let decoded = PacketDecoder.decode(record.bytes, linkType: record.info.linkType)
            let t = builder.track(info: record.info, decoded: decoded)
            if t.hasStream {
                if t.stream == ends.count {
                    ends.append(record.frameNumber)
                } else {
                    ends[t.stream] = record.frameNumber
                }
            }
            return true
        }
        return ends
    }

    /// Progress text on stderr without a newline (it is overwritten by the next update).
}
