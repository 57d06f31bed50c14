// One log line of svrd, as text (logfmt: `level=info event=start msg="svrd starting" key=value`)
// or as a JSON object, optionally behind its syslog priority (`<6>`), which journald reads
// from a service's stderr and strips. Pure functions: the handler and the tests share them.

import Glibc
import Logging
import SVR

enum LogFormat {
    /// syslog priority of a swift-log level (journald's PRIORITY=).
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// The whole line, without the newline. `time` is omitted when nil (journald stamps lines).
    static func line(level: Logger.Level, message: String, metadata: Logger.Metadata, format: Config.Log.Format,
                     priorityPrefix: Bool, time: String?) -> String {
        // Fixed fields first, then the metadata by key: the same event always looks the same.
        var fields: [(String, String)] = []
        if let time { fields.append(("time", time)) }
        fields.append(("level", level.rawValue))
        if case .string(let e)? = metadata["event"] { fields.append(("event", e)) }
        fields.append(("msg", message))
        for key in metadata.keys.sorted() where key != "event" {
            fields.append((key, "\(metadata[key]!)"))
        }
        var out = priorityPrefix ? "<\(priority(level))>" : ""
        switch format {
        case .text:
            out += fields.map { "\($0.0)=\(textValue($0.1))" }.joined(separator: " ")
        case .json:
            var members = fields.map { ($0.0, JSON.string($0.1)) }
            members.insert(("priority", .int(Int64(priority(level)))), at: time == nil ? 1 : 2)
            out += JSON.object(members).serialized()
        }
        return out
    }

    /// A logfmt value: bare when it is a plain word, else quoted as a JSON string.
    static func textValue(_ s: String) -> String {
        let plain = !s.isEmpty && s.unicodeScalars.allSatisfy { c in
            c.value > 0x20 && c.value < 0x7f && c != "\"" && c != "=" && c != "\\"
        }
        if plain { return s }
        // The escapes of a JSON string: `\"`, `\\`, `\n`, `\t`, `\u0001`.
        return JSON.string(s).serialized()
    }

    /// UTC time with milliseconds, "2026-12-04T18:20:41.454Z".
    static func now() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int32, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T"
            + "\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(ts.tv_nsec / 1_000_000), 3))Z"
    }
}

/// swift-log handler writing `LogFormat` lines to stderr (one write(2) per line, so lines
/// of several threads never interleave).
struct SVRDLogHandler: LogHandler {
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    let format: Config.Log.Format
    let priorityPrefix: Bool
    /// stderr is journald's stream: the journal stamps each entry, text lines carry no time.
    let underJournal: Bool
    /// Where lines go; stderr unless a test captures them.
    let sink: @Sendable (String) -> Void

    init(level: Logger.Level, config: Config.Log, environment journalStream: String?,
         sink: @escaping @Sendable (String) -> Void = SVRDLogHandler.standardError) {
        logLevel = level
        format = config.format
        underJournal = !(journalStream ?? "").isEmpty
        switch config.priorityPrefix {
        case .always: priorityPrefix = true
        case .never: priorityPrefix = false
        case .auto: priorityPrefix = underJournal
        }
        self.sink = sink
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let level = event.level, message = event.message
        var all = metadata.merging(event.metadata ?? [:]) { $1 }
        if let error = event.error { all["error"] = "\(error)" }
        // Under journald the journal stamps each line; otherwise (and in JSON) the line carries its time.
        let time: String? = underJournal && format == .text ? nil : LogFormat.now()
        sink(LogFormat.line(level: level, message: message.description, metadata: all, format: format,
                            priorityPrefix: priorityPrefix, time: time) + "\n")
    }

    @Sendable static func standardError(_ text: String) {
        var bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + done, $0.count - done) }
            if n <= 0 { if n < 0 && errno == EINTR { continue }; return }
            done += n
        }
    }
}
