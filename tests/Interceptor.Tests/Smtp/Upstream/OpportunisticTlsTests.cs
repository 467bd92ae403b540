using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Interceptor.Smtp.Upstream;
using Interceptor.Tests.Smtp.IO;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Upstream;

/// <summary>
/// STARTTLS towards a customer's chosen MX takes any certificate, and must not fetch what the certificate points at: a
/// leaf whose issuer is not sent names a URL (its AIA) on a local listener, and the handshake with the daemon's options
/// makes no connection there. The control handshake with .NET's default chain policy does, so the test can fail.
/// </summary>
public class OpportunisticTlsTests
{
    [Test]
    public async Task A_handshake_with_the_opportunistic_options_fetches_nothing_the_certificate_names()
    {
        await using var aia = IssuerUrlListener.Start();
        using var leaf = LeafWithUnsentIssuer(aia.Url);

        await HandshakeAsync(leaf, UpstreamConnection.OpportunisticTlsOptions(IPAddress.Loopback));

        Assert.That(aia.Connections, Is.Zero, "the daemon connected to the URL in the MX's certificate");
    }

    [Test]
    public async Task Control_a_handshake_with_the_default_chain_policy_does_fetch_it()
    {
        await using var aia = IssuerUrlListener.Start();
        using var leaf = LeafWithUnsentIssuer(aia.Url);
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = "127.0.0.1",
#pragma warning disable CA5359 // the control case: the same acceptance, .NET's default chain policy
            RemoteCertificateValidationCallback = static (_, _, _, _) => true,
#pragma warning restore CA5359
        };

        await HandshakeAsync(leaf, options);

        Assert.That(aia.Connections, Is.GreaterThan(0), "without DisableCertificateDownloads .NET fetches the issuer");
    }

    private static async Task HandshakeAsync(X509Certificate2 serverCertificate, SslClientAuthenticationOptions clientOptions)
    {
        using var pair = await LoopbackPair.OpenAsync();
        await using var serverTls = new SslStream(pair.Server);
        await using var clientTls = new SslStream(pair.Client);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        // offline: the server side would otherwise fetch the issuer itself, to send it along.
        var serverOptions = new SslServerAuthenticationOptions { ServerCertificateContext = SslStreamCertificateContext.Create(serverCertificate, null, offline: true) };
        await Task.WhenAll(
            serverTls.AuthenticateAsServerAsync(serverOptions, timeout.Token),
            clientTls.AuthenticateAsClientAsync(clientOptions, timeout.Token));
    }

    /// <summary>A leaf signed by a CA nobody sends, whose AIA names <paramref name="issuerUrl"/> as the place to get it.</summary>
    private static X509Certificate2 LeafWithUnsentIssuer(Uri issuerUrl)
    {
        var now = DateTimeOffset.UtcNow;
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=Unsent Issuer CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        using var ca = caRequest.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(2));

        using var leafKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var leafRequest = new CertificateRequest("CN=mx.customer.test", leafKey, HashAlgorithmName.SHA256);
        leafRequest.CertificateExtensions.Add(new X509AuthorityInformationAccessExtension(null, [issuerUrl.ToString()]));
        using var leaf = leafRequest.Create(ca, now.AddMinutes(-5), now.AddDays(1), [1, 2, 3, 4]);
        using var withKey = leaf.CopyWithPrivateKey(leafKey);

        // A PKCS#12 round trip gives a certificate whose private key SslStream can use.
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pfx), null);
    }

    /// <summary>A TCP listener standing where the certificate's issuer URL points: counts connections and closes each.</summary>
    private sealed class IssuerUrlListener : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();
        private Task _accepting = Task.CompletedTask;
        private int _connections;

        public Uri Url => new($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/issuer.cer");

        public int Connections => Volatile.Read(ref _connections);

        public static IssuerUrlListener Start()
        {
            var listener = new IssuerUrlListener();
            listener._listener.Start();
            listener._accepting = listener.AcceptAsync();
            return listener;
        }

        private async Task AcceptAsync()
        {
            try
            {
                while (true)
                {
                    using var connection = await _listener.AcceptTcpClientAsync(_stop.Token);
                    Interlocked.Increment(ref _connections);
                }
            }
            catch (OperationCanceledException)
            {
                // Disposed.
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _accepting;
            _listener.Stop();
            _stop.Dispose();
        }
    }
}
