namespace Interceptor.Smtp.Scan;

/// <summary>
/// Whether a failed scan is the user's doing or the scanner's. The scanner is shared: anyone on the host can wedge it
/// (spamd listens on 127.0.0.1:783 by default, for every local user) and it goes down on its own. A failure counts
/// against a user (toward <c>Suspension.UnsentLimit</c>) only while the scanner judges other users' mail and fails
/// nobody else's: then the trouble is in what she sends (content slow to scan). Two most-recent entries per kind, so
/// "someone other than uid X" is answered without a table of users.
/// </summary>
internal sealed class ScannerHealth(TimeSpan window, Func<long>? nowMilliseconds = null)
{
    private readonly Lock _lock = new();
    private readonly Func<long> _now = nowMilliseconds ?? (static () => Environment.TickCount64);
    private Recent _successes;
    private Recent _failures;

    public void Succeeded(uint uid)
    {
        lock (_lock)
        {
            _successes.Note(uid, _now());
        }
    }

    /// <summary>Notes the failure; true when it is the user's own (others served, no one else failed, within the window).</summary>
    public bool FailedFor(uint uid)
    {
        lock (_lock)
        {
            var now = _now();
            var since = now - (long)window.TotalMilliseconds;
            var ownFault = _successes.SomeoneElseSince(uid, since) && !_failures.SomeoneElseSince(uid, since);
            _failures.Note(uid, now);
            return ownFault;
        }
    }

    /// <summary>The latest event, and the latest of a different uid than the latest's.</summary>
    private struct Recent
    {
        private (uint Uid, long At)? _latest;
        private (uint Uid, long At)? _latestOfAnother;

        public void Note(uint uid, long at)
        {
            if (_latest is { } latest && latest.Uid != uid)
            {
                _latestOfAnother = latest;
            }

            _latest = (uid, at);
        }

        public readonly bool SomeoneElseSince(uint uid, long since)
        {
            var other = _latest is { } latest && latest.Uid != uid ? latest : _latestOfAnother;
            return other is { } found && found.Uid != uid && found.At >= since;
        }
    }
}
