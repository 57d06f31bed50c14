// libFuzzer target for the config reader (Fuzz/run.sh config SECONDS).
//
// Compiled into one module with the SVR sources the config reader needs (see Fuzz/run.sh),
// linked against TOMLKit and its C++ toml++ core, both built with the same sanitizers. Each
// input is a config file's bytes. Besides "no crash, no out-of-bounds access, no leak"
// (AddressSanitizer) and "no hang" (libFuzzer's -timeout), it checks on every input:
//   1. the reader returns a config or a list of errors, and a valid config has no errors;
//   2. every error is one line naming a line of the file (1...lines, or 0 for the file);
//   3. at most `ConfigDiagnostics.maxErrors` errors plus one "more not shown" line.

@_cdecl("LLVMFuzzerTestOneInput")
public func configFuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // Bytes that are not text stop before parsing; the rest is what `Config.load` parses.
    if let problem = Config.textProblem(bytes, fileName: "fuzz.toml") {
        check([problem], lines: bytes)
        return 0
    }
    let result = Config.validate(text: String(decoding: bytes, as: UTF8.self), fileName: "fuzz.toml")
    let (config, errors) = (result.config, result.errors)
    if config != nil && !errors.isEmpty { fatalError("a config and \(errors.count) errors") }
    if config == nil && errors.isEmpty { fatalError("neither a config nor an error") }
    check(errors, lines: bytes)
    return 0
}

func check(_ errors: [ConfigError], lines bytes: [UInt8]) {
    let lineCount = bytes.reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
    if errors.count > ConfigDiagnostics.maxErrors + 1 { fatalError("\(errors.count) errors listed") }
    for e in errors {
        if e.line < 0 || e.line > lineCount { fatalError("line \(e.line) of a \(lineCount)-line file: \(e)") }
        if e.description.utf8.contains(0x0A) { fatalError("an error of more than one line: \(e)") }
    }
}
