using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Interceptor.Core.Threading;

namespace Interceptor.Smtp.Tls;

/// <summary>
/// The certificates minted for clients, one per name, kept up to <c>ClientTls.CacheSize</c>. Each name is charged to the
/// user whose session asked for it last, and past the size the least recently used name of the user charged with the
/// most goes: a site asking for thousands of fresh names pushes out its own, not a neighbour's. Minting runs on the thread pool outside the lock: a session waiting for a new name never holds up the sessions whose
/// names are cached, and sessions asking for the same new name at once share one minting. A certificate with less than a
/// quarter of its validity left is minted again in the background when its name is next asked for (a daemon runs for
/// longer than the leaves' <c>ClientTls.CertificateLifetimeDays</c>, and a name in steady use is never evicted); the old
/// one is served until the new one is ready, and kept when that minting fails, which is tried again a minute later.
/// </summary>
public sealed class MintedCertificateCache
{
    /// <summary>How long a failed renewal waits before the next try, while the old certificate is still served.</summary>
    public static readonly TimeSpan RenewalRetry = TimeSpan.FromMinutes(1);

    private readonly Func<string, X509Certificate2> _mint;
    private readonly X509Certificate2Collection _chain;
    private readonly int _capacity;
    private readonly TimeProvider _time;
    private readonly DateTime _issuerNotAfter;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, LinkedListNode<Entry>> _byName = new(StringComparer.Ordinal);

    // Per user charged, most recently used first.
    private readonly Dictionary<uint, LinkedList<Entry>> _byOwner = [];

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

    /// <summary>Counts renewals that failed while the old certificate was still valid (it was kept).</summary>
    public long RenewalsFailed => Interlocked.Read(ref _renewalsFailed);

    private long _minted;
    private long _renewalsFailed;

    /// <summary>
    /// The certificate context for <paramref name="name"/> (already normalised by the caller), minted on first use; the
    /// name is charged to <paramref name="owner"/>, the uid of the session asking, until another user asks for it.
    /// </summary>
    public Task<SslStreamCertificateContext> GetAsync(string name, uint owner)
    {
        Task<SslStreamCertificateContext> context;
        lock (_lock)
        {
            if (_byName.TryGetValue(name, out var node))
            {
                Touch(node, owner);
                var entry = node.Value;
                switch (Age(entry.Context))
                {
                    case Renewal.NotDue:
                        return entry.Context;
                    case Renewal.Due:
                        RenewInBackground(entry);
                        return entry.Context;
                }

                // Expired: nobody may be handed it. A session handshaking with it keeps it; the GC frees it, as an evicted one.
                Remove(node);
            }

            context = ThreadDemotion.RunNormal(() => Create(name));
            if (!_byOwner.TryGetValue(owner, out var owned))
            {
                _byOwner[owner] = owned = new LinkedList<Entry>();
            }

            _byName[name] = owned.AddFirst(new Entry(name, owner, context));
            if (_byName.Count > _capacity)
            {
                // Evicted contexts are not disposed: a session may still be handshaking with one; the GC frees them.
                Remove(LargestShare(owner).Last!);
            }
        }

        // A failed minting is not cached: the next session for the name tries again.
        _ = context.ContinueWith(failed => Forget(name, failed), CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        return context;
    }

    // The list of the user charged with the most names. On a tie the asking user's, so a flood of fresh names never takes
    // from a neighbour holding as many; but not when the name just added is all the asker holds (more users than
    // CacheSize, each with one name). A scan of the users holding names: it runs only beside a minting, which costs more.
    private LinkedList<Entry> LargestShare(uint asking)
    {
        LinkedList<Entry>? largest = null;
        foreach (var (uid, owned) in _byOwner)
        {
            var larger = largest is null || owned.Count > largest.Count || (owned.Count == largest.Count && uid == asking);
            if (larger && !(uid == asking && owned.Count == 1))
            {
                largest = owned;
            }
        }

        return largest ?? _byOwner[asking];
    }

    // Under the lock. Most recent in the list of the user asking now, charged to her: a name several users reach (a big
    // provider's MX) belongs to whoever used it last, so a user who asked for it first cannot hold it in her own share
    // and churn it out; she would have to use it again after every neighbour's use and then mint her whole share.
    private void Touch(LinkedListNode<Entry> node, uint owner)
    {
        var entry = node.Value;
        var owned = node.List!;
        owned.Remove(node);
        if (entry.Owner != owner)
        {
            if (owned.Count == 0)
            {
                _byOwner.Remove(entry.Owner);
            }

            if (!_byOwner.TryGetValue(owner, out owned))
            {
                _byOwner[owner] = owned = new LinkedList<Entry>();
            }

            entry.Owner = owner;
        }

        owned.AddFirst(node);
    }

    // Under the lock.
    private void Remove(LinkedListNode<Entry> node)
    {
        var entry = node.Value;
        var owned = node.List!;
        owned.Remove(node);
        if (owned.Count == 0)
        {
            _byOwner.Remove(entry.Owner);
        }

        _byName.Remove(entry.Name);
    }

    private enum Renewal
    {
        NotDue,
        Due,
        Expired,
    }

    // Due with under a quarter of its validity left when a new one would last longer: one the CA's own end cut short (a CA
    // about to expire) stays until it expires, or every handshake of its last days would mint again. Once expired, the
    // minting says the CA is not valid (the session's line, event 1316), rather than clients meeting an expired leaf.
    private Renewal Age(Task<SslStreamCertificateContext> context)
    {
        if (!context.IsCompletedSuccessfully)
        {
            return Renewal.NotDue;
        }

        var leaf = context.Result.TargetCertificate;
        var (from, until) = (leaf.NotBefore.ToUniversalTime(), leaf.NotAfter.ToUniversalTime());
        var now = _time.GetUtcNow().UtcDateTime;
        if (now >= until)
        {
            return Renewal.Expired;
        }

        return until < _issuerNotAfter && now >= until - ((until - from) / 4) ? Renewal.Due : Renewal.NotDue;
    }

    // Under the lock. One renewal at a time per name, none within RenewalRetry of a failed one.
    private void RenewInBackground(Entry entry)
    {
        if (entry.Renewing || _time.GetUtcNow() < entry.NextRenewal)
        {
            return;
        }

        entry.Renewing = true;
        var name = entry.Name;
        _ = ThreadDemotion.RunNormal(() => Create(name)).ContinueWith(
            renewed => Renewed(entry, renewed), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
    }

    private void Renewed(Entry entry, Task<SslStreamCertificateContext> renewed)
    {
        lock (_lock)
        {
            entry.Renewing = false;
            if (renewed.IsCompletedSuccessfully)
            {
                // Evicted meanwhile: the entry is unreachable and the new context goes with it.
                entry.Context = renewed;
                return;
            }

            entry.NextRenewal = _time.GetUtcNow() + RenewalRetry;
        }

        Interlocked.Increment(ref _renewalsFailed);
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
                Remove(node);
            }
        }
    }

    // Mutable, under the lock: a renewal replaces the context in place, keeping the name's place in its user's list.
    private sealed class Entry(string name, uint owner, Task<SslStreamCertificateContext> context)
    {
        public string Name { get; } = name;

        public uint Owner { get; set; } = owner;

        public Task<SslStreamCertificateContext> Context { get; set; } = context;

        public bool Renewing { get; set; }

        public DateTimeOffset NextRenewal { get; set; }
    }
}
