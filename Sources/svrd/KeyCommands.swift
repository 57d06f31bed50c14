// `svrd genkey` and `svrd pubkey`: router identity keys, as `wg genkey` / `wg pubkey` do it.
//
//   svrd genkey                      prints a new base64 X25519 private key
//   svrd genkey --out /etc/svrd/key  writes it to a new file created with mode 0600
//   svrd pubkey < key                prints the base64 public key of the private key on stdin

import ArgumentParser
import Glibc
import SVR

struct GenKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "genkey",
        abstract: "Generate a new X25519 private key (base64).",
        discussion: "Without --out the key is printed on stdout. With --out the file is created with mode 0600 and must not exist yet.")

    @Option(name: .long, help: ArgumentHelp("Write the key to this new file (mode 0600) instead of stdout.", valueName: "file"))
    var out: String?

    func run() throws {
        let key = try X25519PrivateKey.generate()
        let line = key.base64 + "\n"
        guard let path = out else {
            print(key.base64)
            return
        }
        try KeyFile.createPrivate(path: path, contents: line)
    }
}

struct PubKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pubkey",
        abstract: "Read a base64 private key on stdin and print its base64 public key.")

    func run() throws {
        let text = try KeyFile.readStandardInput(limit: 4096)
        let trimmed = text.trimmingSuffix(while: \.isWhitespace)
        do {
            print(try X25519PrivateKey(base64: trimmed).publicKey.base64)
        } catch {
            throw KeyCommandError("stdin is not a base64 X25519 private key (44 characters)")
        }
    }
}

struct KeyCommandError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

enum KeyFile {
    /// Creates `path` exclusively with mode 0600 (whatever the umask) and writes `contents`.
    static func createPrivate(path: String, contents: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw KeyCommandError("cannot create \(path): \(errnoText())") }
        defer { close(fd) }
        guard fchmod(fd, 0o600) == 0 else { throw KeyCommandError("cannot chmod \(path): \(errnoText())") }
        var bytes = Array(contents.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw KeyCommandError("cannot write \(path): \(errnoText())") }
            bytes = bytes.dropFirst(n)
        }
        guard fsync(fd) == 0 else { throw KeyCommandError("cannot sync \(path): \(errnoText())") }
    }

    /// Reads stdin to EOF (at most `limit` bytes).
    static func readStandardInput(limit: Int) throws -> String {
        var data = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 512)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw KeyCommandError("cannot read stdin: \(errnoText())") }
            if n == 0 { break }
            data += chunk[0..<n]
            guard data.count <= limit else { throw KeyCommandError("stdin is longer than \(limit) bytes") }
        }
        return String(decoding: data, as: UTF8.self)
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}

extension String {
    fileprivate func trimmingSuffix(while predicate: (Character) -> Bool) -> Substring {
        var end = endIndex
        while end > startIndex, predicate(self[index(before: end)]) { end = index(before: end) }
        return self[startIndex..<end]
    }
}
