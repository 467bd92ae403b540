using Interceptor.Smtp.Tls;

namespace Interceptor.Tests.Smtp.Tls;

/// <summary>One throwaway CA per test run, written the way the package writes it (ClientCertificateAuthority.Create).</summary>
internal static class TestClientCa
{
    private static readonly Lazy<(string Certificate, string Key)> Files = new(() =>
    {
        var directory = Directory.CreateTempSubdirectory("smtpi-client-ca-").FullName;

        // The whole run shares it: gone when the test process ends.
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Directory.Delete(directory, recursive: true);
        var (certificate, key) = (Path.Combine(directory, "ca.crt"), Path.Combine(directory, "ca.key"));
        ClientCertificateAuthority.Create(certificate, key, "unit.test");
        return (certificate, key);
    });

    public static string CertificatePath => Files.Value.Certificate;

    public static string KeyPath => Files.Value.Key;

    public static ClientCertificateAuthority Load() => ClientCertificateAuthority.Load(CertificatePath, KeyPath);

    /// <summary>A server as the daemon builds it for Mint mode.</summary>
    public static ClientTlsServer Server(int cacheSize = 16, TimeProvider? time = null) =>
        new(new ReloadingClientCa(CertificatePath, KeyPath, TimeSpan.FromDays(7), cacheSize, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, time));
}
