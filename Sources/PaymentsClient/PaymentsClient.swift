/// The Swift client SDK for the payments platform. Placeholder until the SDK issue.
public enum PaymentsClientModule {}
