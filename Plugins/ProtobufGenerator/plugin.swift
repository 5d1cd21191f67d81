import Foundation
import PackagePlugin

/// Build-tool plugin: runs `protoc` with our `protoc-gen-swift-payments` over the `.proto` files
/// a target lists in its `protobuf.json`, so no generated Swift is committed.
///
/// `protobuf.json` (in the target's directory):
/// ```json
/// { "root": "../../proto", "files": ["payments/v1/payment.proto"], "visibility": "public" }
/// ```
/// `root` is the import root, relative to the target's directory; `files` are relative to it.
/// Imports from `google/protobuf/` resolve to `/usr/include` (Debian's libprotobuf-dev) and to
/// the types in ProtobufRuntime. Set `PROTOC` to use another protoc than `/usr/bin/protoc`.
@main
struct ProtobufGenerator: BuildToolPlugin {
  struct Configuration: Decodable {
    var root: String
    var files: [String]
    var visibility: String?
  }

  func createBuildCommands(context: PluginContext, target: any Target) async throws -> [Command] {
    guard let sourceTarget = target as? SourceModuleTarget else { return [] }
    let directory = sourceTarget.directoryURL
    let configurationURL = directory.appending(path: "protobuf.json")
    let configuration = try JSONDecoder().decode(Configuration.self, from: Data(contentsOf: configurationURL))
    let root = directory.appending(path: configuration.root).standardizedFileURL
    let output = context.pluginWorkDirectoryURL.appending(path: "generated")
    let plugin = try context.tool(named: "protoc-gen-swift-payments").url
    let protoc = URL(fileURLWithPath: ProcessInfo.processInfo.environment["PROTOC"] ?? "/usr/bin/protoc")

    var arguments = [
      "--plugin=protoc-gen-swift-payments=\(plugin.path)",
      "--swift-payments_out=\(output.path)",
      "--swift-payments_opt=Visibility=\(configuration.visibility ?? "public")",
      "-I", root.path, "-I", "/usr/include",
    ]
    arguments += configuration.files
    let inputs = [configurationURL, plugin] + configuration.files.map { root.appending(path: $0) }
    let outputs = configuration.files.map { output.appending(path: Self.outputName(for: $0)) }
    return [
      .buildCommand(
        displayName: "Generating Swift for \(configuration.files.count) .proto files of \(target.name)",
        executable: protoc, arguments: arguments, inputFiles: inputs, outputFiles: outputs)
    ]
  }

  /// Must match `SwiftGenerator.outputName(for:)`.
  static func outputName(for protoFile: String) -> String {
    let base = protoFile.hasSuffix(".proto") ? String(protoFile.dropLast(6)) : protoFile
    return String(base.map { $0 == "/" || $0 == "-" || $0 == "." ? "_" : $0 }) + ".pb.swift"
  }
}
