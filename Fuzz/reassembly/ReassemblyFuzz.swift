// libFuzzer harness for `Reassembly` (the engine's preallocated fragment table): the input is
// a sequence of fragments `[key 1][offset/8 2][length 2][flags 1][time step 1]` whose data
// is taken from the rest of the input. Checks that nothing crashes and that every datagram
// reported whole holds exactly the bytes its fragments carried (a shadow copy per key).

@_cdecl("LLVMFuzzerTestOneInput")
public func reassemblyFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let table = Reassembly(slots: 4, maxLength: 4096, prefix: 20, timeoutNanos: 1000)
    var shadow: [UInt8: [UInt8]] = [:]
    var at = 0
    var now: UInt64 = 0
    while at + 7 <= size {
        let keyByte = data[at] & 7
        let offset = (Int(data[at + 1]) << 8 | Int(data[at + 2])) * 8 & 0x7FFF
        let length = min(Int(data[at + 3]) << 8 | Int(data[at + 4]), 6000)
        let more = data[at + 5] & 1 != 0
        now &+= UInt64(data[at + 6])
        at += 7
        let n = min(length, size - at)
        let key = ReassemblyKey(a: UInt32(keyByte), b: 1, id: 2, proto: 17)
        let r = table.add(key, offset: offset, data: UnsafeRawPointer(data + at), length: n, more: more, now: now)
        switch r {
        case .incomplete:
            var s = shadow[keyByte] ?? []
            if s.count < offset + n { s += [UInt8](repeating: 0, count: offset + n - s.count) }
            for k in 0..<n { s[offset + k] = data[at + k] }
            shadow[keyByte] = s
        case .complete(let slot, let total):
            var s = shadow[keyByte] ?? []
            if s.count < offset + n { s += [UInt8](repeating: 0, count: offset + n - s.count) }
            for k in 0..<n { s[offset + k] = data[at + k] }
            let p = table.start(slot) + table.prefix
            if total != s.count { fatalError("reassembled \(total) bytes, fragments held \(s.count)") }
            for k in 0..<total where p.load(fromByteOffset: k, as: UInt8.self) != s[k] { fatalError("byte \(k) differs") }
            table.release(slot)
            shadow[keyByte] = nil
        case .dropped:
            shadow[keyByte] = nil
        }
        at += n
        if data[at - (n > 0 ? 1 : 0)] == 0xEE { table.expire(now: now); shadow = [:] }
    }
    return 0
}
