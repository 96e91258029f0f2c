// The admin interface on the reserved path `/_obs-local/` (fault rules; see FaultInjector.swift
// for the JSON). Answered without a signature, to loopback peers only.
import FoundationEssentials

enum AdminAPI {
    static let pathPrefix = "/_obs-local/"
    static let faultsPath = "/_obs-local/faults"

    private struct AddedRules: Codable { var ids: [Int] }
    private struct Problem: Codable { var error: String }

    static func handle(method: String, path: String, body: [UInt8], faults: FaultInjector) -> ServerResponse {
        guard path == faultsPath else { return json(Problem(error: "unknown admin path \(path)"), status: 404) }
        switch method {
        case "GET":
            return json(faults.rules())
        case "DELETE":
            faults.clear()
            return ServerResponse(status: 204)
        case "POST":
            let data = Data(body)
            let rules: [FaultRule]
            if let many = try? JSONDecoder().decode([FaultRule].self, from: data) {
                rules = many
            } else {
                do {
                    rules = [try JSONDecoder().decode(FaultRule.self, from: data)]
                } catch {
                    return json(Problem(error: "invalid fault rule: \(error)"), status: 400)
                }
            }
            return json(AddedRules(ids: faults.add(rules)))
        default:
            return json(Problem(error: "method \(method) not allowed"), status: 405)
        }
    }

    private static func json(_ value: some Encodable, status: Int = 200) -> ServerResponse {
        let bytes = (try? JSONEncoder().encode(value)).map(Array.init) ?? []
        return ServerResponse(status: status, headers: [("Content-Type", "application/json")], body: .bytes(bytes))
    }
}
