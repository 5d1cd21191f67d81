import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import PaymentsTestSupport

/// One sample of a Prometheus text exposition: `name{label="value",...} number`.
struct MetricSample: Sendable, Equatable {
  var name: String
  var labels: [String: String]
  var value: Double
}

/// The samples of a `/metrics` page.
struct MetricsPage: Sendable {
  let samples: [MetricSample]
  let text: String

  /// Fetches `http://127.0.0.1:<port>/metrics`.
  static func scrape(_ http: HTTPClient, port: Int) async throws -> MetricsPage {
    let response = try await http.execute(
      HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"), timeout: .seconds(10))
    guard response.status == .ok else { throw HarnessError("GET /metrics: \(response.status)") }
    let body = try await response.body.collect(upTo: 16 << 20)
    return try MetricsPage(String(buffer: body))
  }

  init(_ text: String) throws {
    self.text = text
    var samples: [MetricSample] = []
    for line in text.split(separator: "\n") where !line.hasPrefix("#") && !line.isEmpty {
      // name{labels} value   or   name value
      guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
        throw HarnessError("not a sample line: \(line)")
      }
      let series = line[..<space]
      var labels: [String: String] = [:]
      let name: Substring
      if let brace = series.firstIndex(of: "{") {
        name = series[..<brace]
        let inner = series[series.index(after: brace)..<series.index(before: series.endIndex)]
        for pair in inner.split(separator: ",") {
          let parts = pair.split(separator: "=", maxSplits: 1)
          guard parts.count == 2 else { throw HarnessError("bad label in: \(line)") }
          labels[String(parts[0])] = String(parts[1].dropFirst().dropLast())
        }
      } else {
        name = series
      }
      samples.append(MetricSample(name: String(name), labels: labels, value: value))
    }
    self.samples = samples
  }

  /// The samples named `name` whose labels include `labels`.
  func select(_ name: String, _ labels: [String: String] = [:]) -> [MetricSample] {
    samples.filter { sample in
      sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
    }
  }

  /// The sum of the samples named `name` whose labels include `labels`; `nil` when there is none.
  func sum(_ name: String, _ labels: [String: String] = [:]) -> Double? {
    let selected = select(name, labels)
    return selected.isEmpty ? nil : selected.reduce(0) { $0 + $1.value }
  }
}
