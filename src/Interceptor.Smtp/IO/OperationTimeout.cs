namespace Interceptor.Smtp.IO;

/// <summary>
/// A time limit for one I/O operation at a time, reusing one cancellation source (and its timer) for every
/// operation of a connection. A linked source per read or write cost an allocation, a timer and a registration
/// each, a dozen times per relayed message. Not thread-safe: one operation at a time, as SMTP's lock-step gives.
/// </summary>
public sealed class OperationTimeout : IDisposable
{
    private CancellationTokenSource _source = new();

    /// <summary>
    /// A token cancelled after <paramref name="limit"/> or when <paramref name="outer"/> is; dispose the scope when the
    /// operation ends. Tell the two apart with <c>outer.IsCancellationRequested</c>.
    /// </summary>
    public Scope Start(TimeSpan limit, CancellationToken outer)
    {
        // A source whose timer fired cannot be reused; TryReset also disarms a pending timer.
        if (!_source.TryReset())
        {
            _source.Dispose();
            _source = new CancellationTokenSource();
        }

        _source.CancelAfter(limit);
        var registration = outer.CanBeCanceled
            ? outer.UnsafeRegister(static state => ((CancellationTokenSource)state!).Cancel(), _source)
            : default;
        return new Scope(registration, _source.Token);
    }

    public void Dispose() => _source.Dispose();

    /// <summary>One operation's token; disposing it unlinks the outer token.</summary>
    public readonly struct Scope(CancellationTokenRegistration registration, CancellationToken token) : IDisposable
    {
        public CancellationToken Token { get; } = token;

        public void Dispose() => registration.Dispose();
    }
}
