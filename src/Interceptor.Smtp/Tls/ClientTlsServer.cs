using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Text.RegularExpressions;
using Interceptor.Core.Net;
using Interceptor.Core.Options;
using Interceptor.Core.Threading;
using Interceptor.Smtp.IO;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Smtp.Tls;

/// <summary>
/// The server side of STARTTLS on the intercepted hop: the certificate is chosen once the client's hello is read, for the
/// name it asked for (SNI) or, without one, for the address it dialled, so the client sees the name it meant to reach.
/// One instance serves every session (the CA and the cache are shared).
/// </summary>
public sealed partial class ClientTlsServer : IDisposable
{
    private readonly ReloadingClientCa _ca;

    /// <summary>A server with the CA of <paramref name="ca"/>, which it disposes.</summary>
    public ClientTlsServer(ReloadingClientCa ca) => _ca = ca;

    /// <summary>
    /// The server for <c>ClientTls.Mode</c> Mint (loads and checks the CA, then reads it again when its files change);
    /// null when the mode is Off.
    /// </summary>
    public static ClientTlsServer? From(ClientTlsOptions options, ILogger? logger = null, TimeProvider? time = null) => options.Mode switch
    {
        ClientTlsMode.Mint => new ClientTlsServer(new ReloadingClientCa(
            options.CaCertificate, options.CaKey, options.CertificateLifetime, options.CacheSize, logger ?? NullLogger.Instance, time)),
        _ => null,
    };

    /// <summary>The certificates of the CA in use.</summary>
    public MintedCertificateCache Certificates => _ca.Certificates;

    /// <summary>
    /// The name a certificate is minted for: the SNI name when it is a host name (lower case, without a final dot), else
    /// the dialled address. SNI is the client's word, so anything that is not a plain host name is not put into a certificate.
    /// </summary>
    public static string CertificateName(string? serverName, IPAddress dialled)
    {
        var name = serverName?.TrimEnd('.');
        if (!string.IsNullOrEmpty(name) && HostName().IsMatch(name) && !IPAddress.TryParse(name, out _))
        {
            return name.ToLowerInvariant();
        }

        return MappedAddress.Unmap(dialled).ToString();
    }

    /// <summary>
    /// Runs the handshake over <paramref name="client"/> (left open when the TLS stream is disposed: the listener owns it)
    /// for the session of <paramref name="owner"/> (a certificate minted for it is charged to that uid in the cache).
    /// Throws <see cref="OperationCanceledException"/> when <paramref name="token"/> ends it, <see cref="AuthenticationException"/>
    /// or <see cref="IOException"/> when the client's side fails.
    /// </summary>
    public async Task<SslStream> AuthenticateAsync(Stream client, IPAddress dialled, uint owner, CancellationToken token)
    {
        var handshake = new HandshakeStream(client, leaveInnerOpen: true);
        var tls = new SslStream(handshake, leaveInnerStreamOpen: false);
        try
        {
            await BlockingWork.RunAsync(() => new ValueTask(tls.AuthenticateAsServerAsync(
                async (_, hello, _, _) => new SslServerAuthenticationOptions
                {
                    ServerCertificateContext = await CertificateInSessionAsync(handshake, CertificateName(hello.ServerName, dialled), owner),
                    ClientCertificateRequired = false,
                    // Client-initiated renegotiation would be a second handshake inside the session: refused.
                    AllowRenegotiation = false,
                    CertificateRevocationCheckMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
                },
                null,
                token)));
            handshake.Handshaking = false;
            return tls;
        }
        catch
        {
            await tls.DisposeAsync();
            throw;
        }
    }

    // A name's certificate being minted completes on the pool thread that made it, and SslStream would go on with the
    // handshake there (its server flight: key exchange, signing): back to the session's blocking work first.
    private async Task<SslStreamCertificateContext> CertificateInSessionAsync(HandshakeStream handshake, string name, uint owner)
    {
        var pending = Certificates.GetAsync(name, owner);
        if (pending.IsCompleted)
        {
            return await pending;
        }

        // Failed or not, back first: SslStream's own failure path is part of the handshake too.
        await ((Task)pending).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await handshake.BackToSession();
        return await pending;
    }

    public void Dispose() => _ca.Dispose();

    // \z, not $: $ also matches before a final newline, and "mx.example\n" would reach the certificate (where .NET's IDN
    // mapping throws on it: a minting failed on purpose, at every try).
    [GeneratedRegex(@"^(?=.{1,253}\z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\z")]
    private static partial Regex HostName();
}
