/// The dispatcher: intake, rate-limited provider calls, retries. So far it holds the global rate
/// limiter; the rest comes with the dispatcher issue.
public enum DispatcherServiceModule {}
