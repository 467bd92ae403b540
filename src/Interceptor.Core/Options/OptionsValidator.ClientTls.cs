namespace Interceptor.Core.Options;

/// <summary>The keys of TLS towards the intercepted client (issue 18): <c>ClientTls.*</c>.</summary>
public static partial class OptionsValidator
{
    private static void CheckClientTls(ClientTlsOptions tls, Action<bool, string, string> check)
    {
        check(Enum.IsDefined(tls.Mode), "ClientTls.Mode", "must be Off or Mint");
        check(Path.IsPathRooted(tls.CaCertificate), "ClientTls.CaCertificate", "must be an absolute path");
        check(Path.IsPathRooted(tls.CaKey), "ClientTls.CaKey", "must be an absolute path");
        check(tls.CaKey != tls.CaCertificate, "ClientTls.CaKey", "must not be the certificate's file (the certificate is public, the key is not)");

        // A day at least (clients compare with their own clock); 90 days at most, so a leaked leaf key expires soon.
        check(Within(tls.CertificateLifetime, TimeSpan.FromDays(1), TimeSpan.FromDays(90)), "ClientTls.CertificateLifetimeDays", "must be 1-90");
        check(tls.CacheSize is >= 1 and <= 100_000, "ClientTls.CacheSize", "must be 1-100000");
    }
}
