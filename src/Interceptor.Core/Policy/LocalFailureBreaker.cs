using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Replies;

namespace Interceptor.Core.Policy;

/// <summary>
/// A circuit breaker per user for messages that fail on our side: a scan that timed out or could not run, a spool or hold
/// the disk could not keep. Such a failure counts toward nothing, since another user may have caused it (filled the disk,
/// held spamd's children through 127.0.0.1:783), and the user must not be suspended for it. Left at that, a user who makes
/// it happen at will gets MAIL and RCPT to an MX without end and uncounted: a recipient probe from the host's address.
/// <para>
/// So after <see cref="SuspensionOptions.LocalFailureLimit"/> such failures within
/// <see cref="SuspensionOptions.LocalFailureWindow"/>, her MAIL gets a 451 for <see cref="SuspensionOptions.LocalFailureCooldown"/>
/// (her mail would fail anyway, after its RCPTs reached the MX); then one message at a time is let through as a trial. A
/// trial that gets through our stages ends the cool-down and the one-at-a-time rule, but the failures stay counted for
/// their window: the next failure opens it again at once. (A trial is hers to choose: a small message passes a full disk
/// in the spool's memory, a large one passes a mute scanner unscanned; were the failures forgotten, each such trial would
/// buy another burst.) A failed trial opens it again too, and each opening within the window doubles the cool-down, up to
/// the window. Nothing here ever suspends or charges a quota.
/// </para>
/// </summary>
public sealed class LocalFailureBreaker(SuspensionOptions options, TimeProvider time)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<uint, UserFailures> _users = [];
    private long _trials;

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
    /// At MAIL: null when the user may start a message, with <paramref name="trial"/> the trial's number (not 0) when it is
    /// the one message let through after a cool-down (pass it to <see cref="Finished"/>); else the 451 to give.
    /// </summary>
    public SmtpReply? Admit(uint uid, string user, out long trial)
    {
        trial = 0;
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
                return Refusal(user, failures, $"new messages are refused for {Math.Ceiling((failures.OpenUntil - now).TotalSeconds):0} s more");
            }

            if (failures.Times.Count < options.LocalFailureLimit)
            {
                // Closed: too few failures left in the window. A trial still under way no longer holds anyone back. The
                // cool-down's doubling is kept until the window is empty (the entry goes with it).
                failures.Trial = 0;
                failures.TrialPassed = false;
                if (failures.Times.Count == 0)
                {
                    _users.Remove(uid);
                }

                return null;
            }

            if (failures.TrialPassed)
            {
                return null;
            }

            // Half open. A trial whose end never came (a session that never settled its ticket) lapses after the window.
            if (failures.Trial != 0 && now - failures.TrialSince < options.LocalFailureWindow)
            {
                return Refusal(user, failures, "one message is being tried, the others wait for it");
            }

            trial = failures.Trial = ++_trials;
            failures.TrialSince = now;
            return null;
        }
    }

    /// <summary>
    /// A transaction admitted by <see cref="Admit"/> ended (<paramref name="trial"/> as Admit gave it). Returns the number of
    /// failures in the window when this one opened the breaker (for the log line), else null.
    /// </summary>
    public int? Finished(uint uid, long trial, OwnStages stages)
    {
        if (options.LocalFailureLimit <= 0)
        {
            return null;
        }

        lock (_lock)
        {
            _users.TryGetValue(uid, out var failures);
            var current = trial != 0 && failures is not null && failures.Trial == trial;
            if (current)
            {
                failures!.Trial = 0;
            }

            if (stages == OwnStages.Passed && current)
            {
                // Free again until the next failure; only a trial can show it (any message that got through would let a user
                // who fails at will send one real message after every four and never be held back).
                failures!.TrialPassed = true;
                return null;
            }

            if (stages != OwnStages.Failed)
            {
                return null;
            }

            var now = time.GetUtcNow();
            if (failures is null)
            {
                failures = new UserFailures();
                _users[uid] = failures;
            }

            failures.Expire(now - options.LocalFailureWindow);
            if (failures.Times.Count == 0 && now >= failures.OpenUntil)
            {
                // A whole window without a failure: the next opening starts from the first cool-down again. (Not as soon as
                // fewer than the limit are left: the doubling would then end whenever her old failures age out.)
                failures.Cooldown = TimeSpan.Zero;
            }

            failures.Times.Enqueue(now);
            if (failures.Times.Count < options.LocalFailureLimit)
            {
                return null;
            }

            var opened = now >= failures.OpenUntil;
            if (opened)
            {
                // Each time it opens again while the failures are still in the window, the cool-down doubles (up to the
                // window): a user who fails at will gets a burst per cool-down, fewer and fewer of them.
                failures.Cooldown = failures.Cooldown == TimeSpan.Zero ? options.LocalFailureCooldown
                    : TimeSpan.FromTicks(Math.Min(failures.Cooldown.Ticks * 2, Math.Max(options.LocalFailureWindow.Ticks, options.LocalFailureCooldown.Ticks)));
            }

            failures.OpenUntil = now + failures.Cooldown;
            failures.TrialPassed = false;
            return opened ? failures.Times.Count : null;
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

        /// <summary>The cool-down of the last opening; zero while closed.</summary>
        public TimeSpan Cooldown { get; set; }

        /// <summary>The trial under way (its number), 0 when none is, and when it began.</summary>
        public long Trial { get; set; }

        public DateTimeOffset TrialSince { get; set; }

        /// <summary>A trial got through since the breaker last opened: messages go freely until the next failure.</summary>
        public bool TrialPassed { get; set; }

        public void Expire(DateTimeOffset start)
        {
            while (Times.TryPeek(out var oldest) && oldest <= start)
            {
                Times.Dequeue();
            }
        }
    }
}
