// The admin interface on the reserved path `/_obs-local/` (fault rules; see FaultInjector.swift
// for the JSON). Answered without a signature, to loopback peers only.
//
//   DELETE /_obs-local/faults/ID        removes that one rule (a triggered refusal's window
//                                       closes with it): one key's fault ends, others go on
//   POST /_obs-local/uploads/backdate   body {"bucket": "b", "uploadId": "…", "seconds": 7200}:
//                                       the upload's initiation moves that far into the past
//                                       (for tests of tools that pick old uploads)
import FoundationEssentials
import OBSProtocol

enum AdminAPI {
    static let pathPrefix = "/_obs-local/"
    static let faultsPath = "/_obs-local/faults"
    static let backdatePath = "/_obs-local/uploads/backdate"

    private struct AddedRules: Codable { var ids: [Int] }
    private struct Problem: Codable { var error: String }
    private struct Backdate: Codable {
        var bucket: String
        var uploadId: String
        var seconds: Int64
    }

    static func handle(method: String, path: String, body: [UInt8], faults: FaultInjector, store: ObjectStore) -> ServerResponse {
        if path == backdatePath { return backdate(method: method, body: body, store: store) }
        if path.hasPrefix(faultsPath + "/") {
            guard method == "DELETE" else { return json(Problem(error: "method \(method) not allowed"), status: 405) }
            guard let id = Int(path.dropFirst(faultsPath.count + 1)), faults.remove(id: id) else {
                return json(Problem(error: "no fault rule \(path.dropFirst(faultsPath.count + 1))"), status: 404)
            }
            return ServerResponse(status: 204)
        }
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

    private static func backdate(method: String, body: [UInt8], store: ObjectStore) -> ServerResponse {
        guard method == "POST" else { return json(Problem(error: "method \(method) not allowed"), status: 405) }
        let request: Backdate
        do {
            request = try JSONDecoder().decode(Backdate.self, from: Data(body))
        } catch {
            return json(Problem(error: "invalid backdate request: \(error)"), status: 400)
        }
        do {
            try store.backdateUpload(BucketName(request.bucket), UploadID(request.uploadId), seconds: request.seconds)
            return ServerResponse(status: 204)
        } catch {
            return json(Problem(error: "\(error.code): \(error.message)"), status: error.status)
        }
    }

    private static func json(_ value: some Encodable, status: Int = 200) -> ServerResponse {
        let bytes = (try? JSONEncoder().encode(value)).map(Array.init) ?? []
        return ServerResponse(status: status, headers: [("Content-Type", "application/json")], body: .bytes(bytes))
    }
}
