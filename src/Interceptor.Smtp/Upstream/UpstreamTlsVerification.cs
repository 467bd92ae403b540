using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace Interceptor.Smtp.Upstream;

/// <summary>
/// Required, verified TLS to one upstream (a pool relay with <c>Tls: Required</c>): the certificate must carry
/// <paramref name="TargetName"/> and chain to <paramref name="TrustedRoots"/> (its <c>CaFile</c>), or to the system's
/// trust store when that is null.
/// </summary>
public sealed record UpstreamTlsVerification(string TargetName, X509Certificate2Collection? TrustedRoots)
{
    /// <summary>Reads the CA certificates of a relay's <c>CaFile</c> (PEM); throws naming the file when it holds none.</summary>
    public static X509Certificate2Collection LoadRoots(string caFile)
    {
        var roots = new X509Certificate2Collection();
        try
        {
            roots.ImportFromPemFile(caFile);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            throw new InvalidOperationException($"{caFile}: cannot read the CA certificates: {e.Message}", e);
        }

        return roots.Count > 0 ? roots : throw new InvalidOperationException($"{caFile}: holds no PEM certificate");
    }

    public SslClientAuthenticationOptions ClientOptions()
    {
        var options = new SslClientAuthenticationOptions { TargetHost = TargetName };
        if (TrustedRoots is not null)
        {
            // Only the relay's own CA: a certificate some public CA issued for the name does not pass.
            var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
            policy.CustomTrustStore.AddRange(TrustedRoots);
            options.CertificateChainPolicy = policy;
        }

        return options;
    }
}
