using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Interceptor.Core.Threading;

namespace Interceptor.Smtp.Tls;

/// <summary>
/// The certificates minted for clients, one per name, least recently used evicted past <c>ClientTls.CacheSize</c>.
/// Minting runs on the thread pool outside the lock: a session waiting for a new name never holds up the sessions whose
/// names are cached, and sessions asking for the same new name at once share one minting. A certificate with less than a
/// quarter of its validity left is minted again when its name is next asked for (a daemon runs for longer than the
/// leaves' <c>ClientTls.CertificateLifetimeDays</c>, and a name in steady use is never evicted).
/// </summary>
public sealed class MintedCertificateCache
{
    private readonly Func<string, X509Certificate2> _mint;
    private readonly X509Certificate2Collection _chain;
    private readonly int _capacity;
    private readonly TimeProvider _time;
    private readonly DateTime _issuerNotAfter;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, LinkedListNode<(string Name, Task<SslStreamCertificateContext> Context)>> _byName = new(StringComparer.Ordinal);
    private readonly LinkedList<(string Name, Task<SslStreamCertificateContext> Context)> _recency = new();

    /// <param name="mint">Makes the certificate (with its key) for a name.</param>
    /// <param name="issuer">The CA's certificate, sent after the leaf so that clients can build the chain.</param>
    /// <param name="capacity">The most names kept.</param>
    /// <param name="time">The clock that says when a leaf is due for renewal (the one <paramref name="mint"/> uses).</param>
    public MintedCertificateCache(Func<string, X509Certificate2> mint, X509Certificate2 issuer, int capacity, TimeProvider? time = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _mint = mint;
        _capacity = capacity;
        _time = time ?? TimeProvider.System;
        _issuerNotAfter = issuer.NotAfter.ToUniversalTime();

        // Only the public part travels with the leaf.
        _chain = [X509CertificateLoader.LoadCertificate(issuer.RawData)];
    }

    /// <summary>How many names are cached now.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _byName.Count;
            }
        }
    }

    /// <summary>Counts certificates minted (for tests and diagnostics).</summary>
    public long Minted => Interlocked.Read(ref _minted);

    private long _minted;

    /// <summary>The certificate context for <paramref name="name"/> (already normalised by the caller), minted on first use.</summary>
    public Task<SslStreamCertificateContext> GetAsync(string name)
    {
        Task<SslStreamCertificateContext> context;
        lock (_lock)
        {
            if (_byName.TryGetValue(name, out var node))
            {
                _recency.Remove(node);
                if (!DueForRenewal(node.Value.Context))
                {
                    _recency.AddFirst(node);
                    return node.Value.Context;
                }

                // A session handshaking with the old one keeps it; the GC frees it, as an evicted one.
                _byName.Remove(name);
            }

            context = ThreadDemotion.RunNormal(() => Create(name));
            _byName[name] = _recency.AddFirst((name, context));
            if (_byName.Count > _capacity)
            {
                // Evicted contexts are not disposed: a session may still be handshaking with one; the GC frees them.
                var oldest = _recency.Last!;
                _recency.RemoveLast();
                _byName.Remove(oldest.Value.Name);
            }
        }

        // A failed minting is not cached: the next session for the name tries again.
        _ = context.ContinueWith(failed => Forget(name, failed), CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        return context;
    }

    // Expired, or under a quarter of its validity left and a new one would last longer: one the CA's own end cut short (a
    // CA about to expire) stays until it expires, or every handshake of its last days would mint again; once expired, the
    // minting says the CA is not valid (the session's line, event 1316), rather than clients meeting an expired leaf.
    private bool DueForRenewal(Task<SslStreamCertificateContext> context)
    {
        if (!context.IsCompletedSuccessfully)
        {
            return false;
        }

        var leaf = context.Result.TargetCertificate;
        var (from, until) = (leaf.NotBefore.ToUniversalTime(), leaf.NotAfter.ToUniversalTime());
        var now = _time.GetUtcNow().UtcDateTime;
        return now >= until || (until < _issuerNotAfter && now >= until - ((until - from) / 4));
    }

    private SslStreamCertificateContext Create(string name)
    {
        var leaf = _mint(name);
        Interlocked.Increment(ref _minted);
        return SslStreamCertificateContext.Create(leaf, _chain, offline: true);
    }

    private void Forget(string name, Task<SslStreamCertificateContext> failed)
    {
        lock (_lock)
        {
            if (_byName.TryGetValue(name, out var node) && node.Value.Context == failed)
            {
                _recency.Remove(node);
                _byName.Remove(name);
            }
        }
    }
}
