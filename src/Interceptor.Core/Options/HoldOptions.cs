namespace Interceptor.Core.Options;

/// <summary>
/// Hold-and-release (issue 16): where held messages are kept, how long, and how long a released one is retried.
/// </summary>
public sealed record HoldOptions
{
    /// <summary>The directory of held messages (mode 0700, the daemon's own); empty for <c>State.Directory/held</c>.</summary>
    public string Directory { get; init; } = "";

    /// <summary>Held messages nobody released or deleted are deleted after this, with a log line.</summary>
    [ConfigurationKey("RetentionDays")]
    public TimeSpan Retention { get; init; } = TimeSpan.FromDays(14);

    /// <summary>A released message the upstream defers is retried with back-off for this long, then marked failed.</summary>
    [ConfigurationKey("ReleaseRetryHours")]
    public TimeSpan ReleaseRetry { get; init; } = TimeSpan.FromHours(48);

    /// <summary>The directory in use: <see cref="Directory"/>, or <c>held</c> under the state directory.</summary>
    public string DirectoryFor(StateOptions state)
    {
        ArgumentNullException.ThrowIfNull(state);
        return Directory.Length > 0 ? Directory : Path.Combine(state.Directory, "held");
    }
}

/// <summary>What an automatic suspension does to the user's mail.</summary>
public enum SuspensionAction
{
    /// <summary>The kernel refuses the user's port-25 connections (as before issue 16).</summary>
    Refuse,

    /// <summary>Connections are accepted and every message is held for review (an admin's block still refuses).</summary>
    Hold,
}
