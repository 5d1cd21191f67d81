/// A failure to run a local part of the stack (a program, PostgreSQL, a port).
public struct DevStackError: Error, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}
