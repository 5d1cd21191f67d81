// protoc plugin: reads a CodeGeneratorRequest on stdin, writes a CodeGeneratorResponse on stdout.
// All the work is in ProtobufCodeGen.
import Glibc
import ProtobufCodeGen
import ProtobufRuntime

var input: [UInt8] = []
var chunk = [UInt8](repeating: 0, count: 65_536)
while true {
  let count = read(0, &chunk, chunk.count)
  if count < 0, errno == EINTR { continue }
  if count <= 0 { break }
  input.append(contentsOf: chunk[0..<count])
}

var response: CodeGeneratorResponse
do {
  response = SwiftGenerator().generate(try CodeGeneratorRequest(serializedBytes: input))
} catch {
  response = CodeGeneratorResponse()
  response.error = "protoc-gen-swift-payments: could not read the request: \(error)"
}
let output = response.serializedBytes()
var written = 0
while written < output.count {
  let count = output[written...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
  if count < 0, errno == EINTR { continue }
  if count <= 0 { exit(1) }
  written += count
}
