using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Replies;

namespace Interceptor.Core.Policy;

/// <summary>What a transaction's end changed at the breaker, for the log.</summary>
/// <param name="Opened">It opened: how many failures are in the window, and for how long MAIL is refused.</param>
/// <param name="Freed">A trial got through our stages: the user's messages go freely again.</param>
public readonly record struct BreakerChange((int Failures, TimeSpan Cooldown)? Opened, bool Freed);

/// <summary>
/// A circuit breaker per user for messages that fail on our side: a scan that timed out or could not run, a spool or hold
/// the disk could not keep, the store refusing the Pending row, DATA too slow while the time went into
/// writing the spool (not into writes to the MX the client chose, which anyone may run slow).
/// Such a failure counts toward nothing else, since another user may have caused it (filled the disk, held spamd's
/// children through 127.0.0.1:783), and the user must not be suspended for it. Left at that, a user who makes it happen
/// at will gets MAIL and RCPT to an MX without end and uncounted: a recipient probe from the host's address.
/// <para>
/// So after <see cref="SuspensionOptions.LocalFailureLimit"/> such failures within
/// <see cref="SuspensionOptions.LocalFailureWindow"/> the breaker trips: her MAIL gets a 451 for a cool-down (her mail
/// would fail anyway, after its RCPTs reached the MX), then one message at a time is let through as a trial. Tripped, it
/// stays so until a trial gets through our stages, or a whole window passes after the cool-down without a failure: a
/// failed trial opens it again however few failures are left in the window, and each opening doubles the cool-down, up
/// to the window. A trial that gets through frees her messages but forgets no failure (the trial is hers to choose: a
/// small message passes a full disk in the spool's memory), so the next failure in the window trips it at once. Nothing
/// here ever suspends or charges a quota; an admin's <c>unblock</c> clears it.
/// </para>
/// </summary>
public sealed class LocalFailureBreaker(SuspensionOptions options, TimeProvider time)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<uint, UserFailures> _users = [];
    private long _trials;

    /// <summary>Users with an entry; read without the lock on every MAIL, so that nobody pays for the lock while none has.</summary>
    private int _tracked;

    public SuspensionOptions Options => options;

    /// <summary>Users with failures of ours on record (the tests' view of what is kept).</summary>
    public int Tracked => Volatile.Read(ref _tracked);

    /// <summary>
    /// At MAIL: null when the user may start a message, with <paramref name="trial"/> the trial's number (not 0) when it is
    /// the one message let through after a cool-down (pass it to <see cref="Finished"/>); else the 451 to give.
    /// </summary>
    public SmtpReply? Admit(uint uid, string user, out long trial)
    {
        trial = 0;
        if (options.LocalFailureLimit <= 0 || Volatile.Read(ref _tracked) == 0)
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

            if (failures.Times.Count == 0 && now >= failures.OpenUntil + options.LocalFailureWindow)
            {
                // A whole window after the cool-down without a failure: forgotten, the next trip starts from the first cool-down.
                Forget(uid);
                return null;
            }

            if (!failures.Tripped)
            {
                return null;
            }

            // Half open. A trial whose end never came (a session that never settled its ticket) holds her back until the
            // next opening drops it, or the quiet window above forgets her.
            if (failures.Trial != 0)
            {
                return Refusal(user, failures, "one message is being tried, the others wait for it");
            }

            trial = failures.Trial = ++_trials;
            return null;
        }
    }

    /// <summary>A transaction admitted by <see cref="Admit"/> ended (<paramref name="trial"/> as Admit gave it).</summary>
    public BreakerChange Finished(uint uid, long trial, OwnStages stages)
    {
        if (options.LocalFailureLimit <= 0 || (trial == 0 && stages != OwnStages.Failed))
        {
            return default;
        }

        lock (_lock)
        {
            _users.TryGetValue(uid, out var failures);
            var current = trial != 0 && failures is not null && failures.Trial == trial;
            if (current)
            {
                failures!.Trial = 0;
                if (stages == OwnStages.Passed && failures.Tripped)
                {
                    // Free again until the next failure. Only a trial can show it: were any message that got through enough,
                    // a user who fails at will would send one real message after every four and never be held back.
                    failures.Tripped = false;
                    return new BreakerChange(null, Freed: true);
                }
            }

            if (stages != OwnStages.Failed)
            {
                return default;
            }

            var now = time.GetUtcNow();
            if (failures is null)
            {
                failures = new UserFailures();
                _users[uid] = failures;
                Volatile.Write(ref _tracked, _users.Count);
            }

            failures.Expire(now - options.LocalFailureWindow);
            if (failures.Times.Count == 0 && now >= failures.OpenUntil + options.LocalFailureWindow)
            {
                failures.Cooldown = TimeSpan.Zero;
            }

            failures.Times.Enqueue(now);
            if (failures.Times.Count < options.LocalFailureLimit && !failures.Tripped)
            {
                return default;
            }

            if (now < failures.OpenUntil)
            {
                // A message admitted before it opened failed meanwhile: the cool-down runs from this failure.
                failures.OpenUntil = now + failures.Cooldown;
                return default;
            }

            // Each opening while tripped doubles the cool-down, up to the window: a user who fails at will gets fewer and
            // fewer turns. A trial under way from before is no longer the trial (its passing would free her).
            failures.Cooldown = failures.Cooldown == TimeSpan.Zero ? options.LocalFailureCooldown
                : TimeSpan.FromTicks(Math.Min(failures.Cooldown.Ticks * 2, options.LocalFailureWindow.Ticks));
            failures.OpenUntil = now + failures.Cooldown;
            failures.Tripped = true;
            failures.Trial = 0;
            return new BreakerChange((failures.Times.Count, failures.Cooldown), Freed: false);
        }
    }

    /// <summary>An admin's unblock: the user's failures of ours are forgotten.</summary>
    public void Reset(uint uid)
    {
        lock (_lock)
        {
            Forget(uid);
        }
    }

    private void Forget(uint uid)
    {
        _users.Remove(uid);
        Volatile.Write(ref _tracked, _users.Count);
    }

    private SmtpReply Refusal(string user, UserFailures failures, string what) => new(
        451,
        "4.3.0",
        $"messages of user {user} keep failing on our side ({failures.Times.Count} within the last {options.LocalFailureWindow.TotalMinutes} min; a local error, logged; Suspension.LocalFailureLimit); {what}; try again later");

    private sealed class UserFailures
    {
        /// <summary>The failures within the window, oldest first.</summary>
        public Queue<DateTimeOffset> Times { get; } = new();

        public DateTimeOffset OpenUntil { get; set; }

        /// <summary>The cool-down of the last opening; zero before the first, and again after a quiet window.</summary>
        public TimeSpan Cooldown { get; set; }

        /// <summary>From an opening until a trial gets through: after the cool-down, one message at a time.</summary>
        public bool Tripped { get; set; }

        /// <summary>The trial under way (its number), 0 when none is.</summary>
        public long Trial { get; set; }

        public void Expire(DateTimeOffset start)
        {
            while (Times.TryPeek(out var oldest) && oldest <= start)
            {
                Times.Dequeue();
            }
        }
    }
}
