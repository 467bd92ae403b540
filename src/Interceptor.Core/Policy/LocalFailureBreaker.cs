using Interceptor.Core.Options;
using Interceptor.Core.Replies;

namespace Interceptor.Core.Policy;

/// <summary>How a transaction ended, as far as <see cref="LocalFailureBreaker"/> cares.</summary>
public enum LocalFailureVerdict
{
    /// <summary>Neither: it ended before its stages ran (the client left, a refusal of what she sent).</summary>
    None,

    /// <summary>A stage of ours or our disk failed it (<see cref="Events.TransactionEvent.FailedHere"/>).</summary>
    Failed,

    /// <summary>It went through our stages: the upstream gave its verdict, or a stage held it.</summary>
    Worked,
}

/// <summary>
/// A circuit breaker per user for messages that fail on our side: a scan that timed out or could not run, a spool or hold
/// the disk could not keep. Such a failure counts toward nothing, since another user may have caused it (filled the disk,
/// held spamd's children through 127.0.0.1:783), and the user must not be suspended for it. Left at that, a user who makes
/// it happen at will gets MAIL and RCPT to an MX without end and uncounted: a recipient probe from the host's address.
/// <para>
/// So after <see cref="SuspensionOptions.LocalFailureLimit"/> such failures within
/// <see cref="SuspensionOptions.LocalFailureWindow"/>, her MAIL gets a 451 for <see cref="SuspensionOptions.LocalFailureCooldown"/>
/// (her mail would fail anyway, after its RCPTs reached the MX); then one message at a time is let through as a trial. A
/// trial that gets through our stages closes the breaker and forgets the failures; one that fails opens it again. Nothing
/// here ever suspends, and it never outlives the trouble by more than one message.
/// </para>
/// </summary>
public sealed class LocalFailureBreaker(SuspensionOptions options, TimeProvider time)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<uint, UserFailures> _users = [];

    public SuspensionOptions Options => options;

    /// <summary>Users with failures of ours on record (the tests' view of what is kept).</summary>
    public int Tracked
    {
        get
        {
            lock (_lock)
            {
                return _users.Count;
            }
        }
    }

    /// <summary>
    /// At MAIL: null when the user may start a message, with <paramref name="trial"/> set when it is the one message let
    /// through after a cool-down (pass it to <see cref="Finished"/>); else the 451 to give.
    /// </summary>
    public SmtpReply? Admit(uint uid, string user, out bool trial)
    {
        trial = false;
        if (options.LocalFailureLimit <= 0)
        {
            return null;
        }

        lock (_lock)
        {
            if (!_users.TryGetValue(uid, out var failures))
            {
                return null;
            }

            var now = time.GetUtcNow();
            failures.Expire(now - options.LocalFailureWindow);
            if (now < failures.OpenUntil)
            {
                return Refusal(user, failures, $"new messages are refused for {Math.Ceiling((failures.OpenUntil - now).TotalSeconds)} s more");
            }

            if (failures.Times.Count < options.LocalFailureLimit)
            {
                // Closed: the failures left the window. Nothing to keep once none is left.
                if (failures.Times.Count == 0 && failures.TrialSince is null)
                {
                    _users.Remove(uid);
                }

                return null;
            }

            // Half open. A trial whose end never came (it cannot, but a stuck user would be refused for good) lapses.
            if (failures.TrialSince is { } since && now - since < options.LocalFailureWindow)
            {
                return Refusal(user, failures, "one message is being tried, the others wait for it");
            }

            failures.TrialSince = now;
            trial = true;
            return null;
        }
    }

    /// <summary>
    /// A transaction admitted by <see cref="Admit"/> ended. Returns the number of failures in the window when this one
    /// opened the breaker (for the log line), else null.
    /// </summary>
    public int? Finished(uint uid, bool trial, LocalFailureVerdict verdict)
    {
        if (options.LocalFailureLimit <= 0)
        {
            return null;
        }

        lock (_lock)
        {
            _users.TryGetValue(uid, out var failures);
            if (trial && failures is not null)
            {
                failures.TrialSince = null;
            }

            switch (verdict)
            {
                case LocalFailureVerdict.Worked when trial:
                    // The trouble is over for her: a legitimate user must not be held to one message at a time for the
                    // rest of the window.
                    _users.Remove(uid);
                    return null;
                case LocalFailureVerdict.Failed:
                    var now = time.GetUtcNow();
                    if (failures is null)
                    {
                        failures = new UserFailures();
                        _users[uid] = failures;
                    }

                    failures.Expire(now - options.LocalFailureWindow);
                    failures.Times.Enqueue(now);
                    if (failures.Times.Count < options.LocalFailureLimit)
                    {
                        return null;
                    }

                    failures.OpenUntil = now + options.LocalFailureCooldown;
                    return failures.Times.Count;
                default:
                    // Only a trial closes it or forgets failures: were any message that got through to clear them, a user
                    // making failures at will would send one real message after every four and never open it.
                    return null;
            }
        }
    }

    private SmtpReply Refusal(string user, UserFailures failures, string what) => new(
        451,
        "4.3.0",
        $"{failures.Times.Count} messages of user {user} failed on our side within {options.LocalFailureWindow.TotalMinutes} min (a local error, logged; Suspension.LocalFailureLimit); {what}; try again later");

    private sealed class UserFailures
    {
        public Queue<DateTimeOffset> Times { get; } = new();

        public DateTimeOffset OpenUntil { get; set; }

        /// <summary>When the trial under way started; null when none is.</summary>
        public DateTimeOffset? TrialSince { get; set; }

        public void Expire(DateTimeOffset start)
        {
            while (Times.TryPeek(out var oldest) && oldest <= start)
            {
                Times.Dequeue();
            }
        }
    }
}
