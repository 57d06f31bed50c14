// Reading the config file and the private key file with Glibc (no Foundation in SVR).

import Glibc

enum ConfigFile {
    struct Contents {
        let bytes: [UInt8]
        /// Permission bits (`st_mode & 0o7777`).
        let mode: UInt32
    }

    /// Reads a whole regular file of at most `limit` bytes.
    static func read(_ path: String, limit: Int) throws(ValueProblem) -> Contents {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)  // never block on a FIFO
        guard fd >= 0 else { throw problem(errno, path) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw problem(errno, path) }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw ValueProblem(.unreadable, "'\(path)' is not a regular file")
        }
        guard st.st_size <= limit else {
            throw ValueProblem(.unreadable, "'\(path)' is too large (\(st.st_size) bytes; at most \(limit))")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw problem(errno, path)
            }
            if n == 0 { break }
            bytes += chunk[0..<n]
            guard bytes.count <= limit else {
                throw ValueProblem(.unreadable, "'\(path)' is too large (more than \(limit) bytes)")
            }
        }
        return Contents(bytes: bytes, mode: UInt32(st.st_mode) & 0o7777)
    }

    private static func problem(_ code: Int32, _ path: String) -> ValueProblem {
        switch code {
        case ENOENT: ValueProblem(.unreadable, "'\(path)' does not exist")
        case EACCES: ValueProblem(.unreadable, "'\(path)' cannot be read: permission denied")
        case EISDIR: ValueProblem(.unreadable, "'\(path)' is a directory")
        default: ValueProblem(.unreadable, "'\(path)' cannot be read: \(String(cString: strerror(code)))")
        }
    }

    /// Reads a private key file: absolute path, regular, not accessible by group or others,
    /// containing strict base64 of 32 bytes (surrounding whitespace allowed), as `svrd genkey` writes.
    static func privateKey(at path: String) throws(ValueProblem) -> [UInt8] {
        guard path.hasPrefix("/") else {
            throw ValueProblem(.invalidValue, "'\(path)' must be an absolute path")
        }
        let contents = try read(path, limit: 4096)
        guard contents.mode & 0o077 == 0 else {
            let mode = String(contents.mode, radix: 8)
            throw ValueProblem(.invalidKey,
                "'\(path)' is accessible by group or others (mode 0\(mode)); run: chmod 600 \(path)")
        }
        let isSpace = ConfigValues.isSpace
        let trimmed = contents.bytes.drop(while: isSpace).reversed().drop(while: isSpace).reversed()
        guard let bytes = Base64.decode(String(decoding: trimmed, as: UTF8.self)), bytes.count == 32 else {
            throw ValueProblem(.invalidKey, "'\(path)' does not hold a base64 X25519 private key (32 bytes)")
        }
        return bytes
    }
}
