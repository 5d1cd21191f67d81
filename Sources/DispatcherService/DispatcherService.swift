/// The dispatcher: intake, rate-limited provider calls, retries. Placeholder until the dispatcher issue.
public enum DispatcherServiceModule {}
