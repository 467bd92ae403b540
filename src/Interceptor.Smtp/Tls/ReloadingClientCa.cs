using Microsoft.Extensions.Logging;

namespace Interceptor.Smtp.Tls;

/// <summary>
/// The client CA and its certificate cache, read again when its files change: an admin who renews the CA
/// (<c>client-ca create</c>, <c>client-ca install</c>) needs no restart, which would drop every session. The files are
/// looked at no more often than every <see cref="CheckInterval"/>, by the handshakes themselves. A new CA that cannot be
/// loaded (a key other users can read or the daemon cannot, a half-written pair, one not yet valid) is refused with its
/// reason, logged once per change of the files and tried again at every check, and the CA in use stays.
/// </summary>
public sealed partial class ReloadingClientCa : IDisposable
{
    public static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(2);

    private readonly string _certificatePath;
    private readonly string _keyPath;
    private readonly TimeSpan _lifetime;
    private readonly int _cacheSize;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _reload = new();
    private readonly List<ClientCertificateAuthority> _retired = [];
    private Issuer _current;
    private Stamp? _seen;
    private Refusal? _refused;
    private long _nextCheckTicks;

    /// <summary>Loads the CA (throws <see cref="ClientTlsSetupException"/> when it cannot be used: the daemon does not start).</summary>
    public ReloadingClientCa(string certificatePath, string keyPath, TimeSpan lifetime, int cacheSize, ILogger logger, TimeProvider? time = null)
    {
        (_certificatePath, _keyPath, _lifetime, _cacheSize, _logger) = (certificatePath, keyPath, lifetime, cacheSize, logger);
        _time = time ?? TimeProvider.System;
        _seen = StampOrNull();
        _current = IssuerFor(ClientCertificateAuthority.Load(certificatePath, keyPath, _time));
        _nextCheckTicks = (_time.GetUtcNow() + CheckInterval).UtcTicks;
    }

    /// <summary>The cache of the CA in use, after a look at its files when one is due.</summary>
    public MintedCertificateCache Certificates
    {
        get
        {
            // Also when the clock was stepped back past the interval (NTP): no hour without a look at the files.
            var now = _time.GetUtcNow().UtcTicks;
            var next = Volatile.Read(ref _nextCheckTicks);
            if (now >= next || now < next - CheckInterval.Ticks)
            {
                lock (_reload)
                {
                    now = _time.GetUtcNow().UtcTicks;
                    if (now >= _nextCheckTicks || now < _nextCheckTicks - CheckInterval.Ticks)
                    {
                        Volatile.Write(ref _nextCheckTicks, (_time.GetUtcNow() + CheckInterval).UtcTicks);
                        ReloadIfChanged();
                    }
                }
            }

            return Volatile.Read(ref _current).Certificates;
        }
    }

    /// <summary>The CA in use.</summary>
    public ClientCertificateAuthority Authority => Volatile.Read(ref _current).Authority;

    private Issuer IssuerFor(ClientCertificateAuthority authority) =>
        new(authority, new MintedCertificateCache(name => authority.Mint(name, _lifetime), authority.Certificate, _cacheSize, _time));

    // Under the lock. A refused pair is tried again at every check (a `chown` to the daemon's user changes nothing this
    // stamp sees), and its refusal logged again only when the files change.
    private void ReloadIfChanged()
    {
        var stamp = StampOrNull();
        if (stamp == _seen)
        {
            return;
        }

        try
        {
            var authority = ClientCertificateAuthority.Load(_certificatePath, _keyPath, _time);
            var old = _current;
            Volatile.Write(ref _current, IssuerFor(authority));
            (_seen, _refused) = (stamp, null);

            // Sessions may still be minting with the old key: it is disposed with the daemon, not now.
            _retired.Add(old.Authority);
            var (subject, notAfter) = (authority.Certificate.Subject, authority.Certificate.NotAfter.ToUniversalTime());
            CaReloaded(_logger, _certificatePath, subject, notAfter);
        }
        catch (Exception e) when (e is ClientTlsSetupException or IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            // Load says what is wrong as ClientTlsSetupException; the rest are the files changing under it. None may reach
            // the handshake that happened to look.
            if (_refused is not { } refused || refused.Stamp != stamp)
            {
                _refused = new Refusal(stamp);
                var inUse = Authority.Certificate.NotAfter.ToUniversalTime();
                CaReloadRefused(_logger, e.Message, inUse);
            }
        }
    }

    // Length and modification time (to 100 ns) of both files, `client-ca create` writing new ones, and the key's mode, so
    // that a refusal is logged again after a chmod that did not help. Null while either is missing (between removing the
    // old pair and creating the new one).
    private Stamp? StampOrNull()
    {
        var (certificate, key) = (new FileInfo(_certificatePath), new FileInfo(_keyPath));
        return certificate.Exists && key.Exists
            ? new Stamp(certificate.Length, certificate.LastWriteTimeUtc, key.Length, key.LastWriteTimeUtc, key.UnixFileMode)
            : null;
    }

    public void Dispose()
    {
        lock (_reload)
        {
            foreach (var retired in _retired)
            {
                retired.Dispose();
            }

            _retired.Clear();
            _current.Authority.Dispose();
        }
    }

    [LoggerMessage(EventId = 1317, Level = LogLevel.Information, Message = "client CA {Path} reloaded: {Subject}, valid until {NotAfter:u}; new certificates are minted with it")]
    private static partial void CaReloaded(ILogger logger, string path, string subject, DateTime notAfter);

    [LoggerMessage(EventId = 1318, Level = LogLevel.Error, Message = "the client CA's files changed, but the new CA cannot be used: {Reason}; the CA in use (valid until {NotAfter:u}) stays")]
    private static partial void CaReloadRefused(ILogger logger, string reason, DateTime notAfter);

    private sealed record Refusal(Stamp? Stamp);

    private sealed record Issuer(ClientCertificateAuthority Authority, MintedCertificateCache Certificates);

    private readonly record struct Stamp(long CertificateLength, DateTime CertificateWritten, long KeyLength, DateTime KeyWritten, UnixFileMode KeyMode);
}
