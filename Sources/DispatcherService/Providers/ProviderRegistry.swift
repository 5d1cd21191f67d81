/// Picks the provider for each payment (docs/design.md §8): the order's `provider` if it names
/// one, else the routing rule for its currency, else the default.
///
/// Adding a provider is one new adapter type and one `register` call where the dispatcher is
/// wired (see docs/providers.md).
public struct ProviderRegistry: Sendable {
  private var providers: [String: any PaymentProvider] = [:]
  /// Currency (ISO 4217) → provider name.
  public var routes: [String: String] = [:]
  /// The provider for payments no rule routes.
  public var defaultProvider: String

  public init(defaultProvider: String) { self.defaultProvider = defaultProvider }

  public mutating func register(_ provider: any PaymentProvider) {
    providers[provider.name] = provider
  }

  /// The names of the registered providers.
  public var names: Set<String> { Set(providers.keys) }

  public func provider(named name: String) -> (any PaymentProvider)? { providers[name] }

  /// The name of the provider for a payment in `currency` that asked for `requested` ("" for none).
  public func route(requested: String, currency: String) -> String {
    if !requested.isEmpty { return requested }
    return routes[currency] ?? defaultProvider
  }
}
