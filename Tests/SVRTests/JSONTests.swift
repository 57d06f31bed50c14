import SVR
import Testing

@Test func jsonRoundTrip() throws {
    let v: JSON = .object([
        ("name", .string("br\"anch\n1")), ("sessions", .int(42)), ("up", .bool(true)),
        ("loss", .double(0.5)), ("peers", .array([.string("a"), .null])), ("empty", .object([])),
    ])
    for pretty in [false, true] {
        #expect(try JSON.parse(v.serialized(pretty: pretty)) == v)
    }
    #expect(v.serialized() == #"{"name":"br\"anch\n1","sessions":42,"up":true,"loss":0.5,"peers":["a",null],"empty":{}}"#)
    #expect(v["sessions"]?.intValue == 42)
}

@Test func jsonRejectsGarbage() {
    for bad in ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"abc", "1 2", String(repeating: "[", count: 100)] {
        #expect(throws: JSONError.self) { try JSON.parse(bad) }
    }
}
