// The text form of IP addresses, shared by this module's two address types (`NetlinkAddress`
// for rtnetlink, `NftAddress` for nftables): inet_pton / inet_ntop, control plane only.

import Glibc

enum IPText {
    /// The network-order bytes (4 or 16) of dotted-quad IPv4 or RFC 4291 IPv6 text, or nil.
    static func parse(_ text: String) -> [UInt8]? {
        var raw = [UInt8](repeating: 0, count: 16)
        if inet_pton(AF_INET, text, &raw) == 1 { return Array(raw[0..<4]) }
        if inet_pton(AF_INET6, text, &raw) == 1 { return raw }
        return nil
    }

    /// The text of 4 (IPv4) or 16 (IPv6) network-order bytes; "?" for any other length.
    static func format(_ bytes: [UInt8]) -> String {
        guard bytes.count == 4 || bytes.count == 16 else { return "?" }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        guard inet_ntop(family, bytes, &text, socklen_t(text.count)) != nil else { return "?" }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
