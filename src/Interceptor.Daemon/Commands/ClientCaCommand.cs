using System.CommandLine;
using Interceptor.Smtp.Tls;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Commands;

/// <summary>
/// `smtp-interceptor client-ca create|install|uninstall`: the host-local CA of ClientTls.Mode Mint (issue 18). `create`
/// writes a new CA where the configuration says (the package runs it on first install); `install` adds the CA to the
/// system trust store with update-ca-certificates, `uninstall` takes it out again.
/// </summary>
public static class ClientCaCommand
{
    /// <summary>Where update-ca-certificates picks up local CAs; the name says whose CA it is.</summary>
    public const string TrustedCopy = "/usr/local/share/ca-certificates/smtp-interceptor-client-ca.crt";

    public const string Meaning = """
        Trusting this CA means: whoever holds its key can impersonate any TLS server (mail, web, anything) to the
        programs on this host that use the system trust store. The key stays with the daemon's user (mode 0600);
        the daemon uses it only to sign short-lived certificates for the names intercepted clients dial.
        """;

    private static readonly TimeSpan UpdateTimeout = TimeSpan.FromMinutes(2);

    public static Command Declare(Func<ParseResult, Arguments> argumentsOf)
    {
        var action = new Argument<string>("action") { Description = "create (a new CA, when none exists), install or uninstall (in the system trust store)" };
        action.AcceptOnlyFromAmong("create", "install", "uninstall");
        var command = new Command("client-ca", "the CA that signs certificates for clients doing STARTTLS (ClientTls.Mode Mint): create it, trust it or stop trusting it") { action };
        command.SetAction((result, _) => RunAsync(argumentsOf(result), result.GetValue(action)!));
        return command;
    }

    public static async Task<int> RunAsync(Arguments arguments, string action)
    {
        var (options, _) = DaemonSetup.Load(arguments.ConfigPath);
        var tls = options.ClientTls;
        try
        {
            return action switch
            {
                "create" => Create(tls.CaCertificate, tls.CaKey),
                "install" => await InstallAsync(tls.CaCertificate),
                _ => await UninstallAsync(),
            };
        }
        catch (Exception e) when (e is ClientTlsSetupException or IOException or UnauthorizedAccessException)
        {
            await Console.Error.WriteLineAsync($"smtp-interceptor: client-ca {action}: {e.Message}");
            return 3;
        }
    }

    private static int Create(string certificate, string key)
    {
        var (hasCertificate, hasKey) = (File.Exists(certificate), File.Exists(key));
        if (hasCertificate && hasKey)
        {
            Console.WriteLine($"the client CA exists: {certificate} (key {key}); nothing to do");
            return 0;
        }

        if (hasCertificate != hasKey)
        {
            throw new ClientTlsSetupException($"only one of {certificate} and {key} exists; remove it or restore the other");
        }

        ClientCertificateAuthority.Create(certificate, key, System.Net.Dns.GetHostName());
        Console.WriteLine($"created the client CA {certificate} (key {key}, mode 0600: give it to the daemon's user)");
        return 0;
    }

    private static async Task<int> InstallAsync(string certificate)
    {
        // Loaded first: a file that is no certificate never reaches the trust store.
        var pem = await File.ReadAllTextAsync(certificate);
        using var parsed = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(pem);
        Directory.CreateDirectory(Path.GetDirectoryName(TrustedCopy)!);
        await File.WriteAllTextAsync(TrustedCopy, parsed.ExportCertificatePem() + "\n");
        File.SetUnixFileMode(TrustedCopy, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var code = await UpdateTrustStoreAsync();
        if (code == 0)
        {
            Console.WriteLine($"the system trusts {parsed.Subject} ({TrustedCopy})");
            Console.Write(Meaning);
            Console.WriteLine("Undo with: smtp-interceptor client-ca uninstall");
        }

        return code;
    }

    private static async Task<int> UninstallAsync()
    {
        if (!File.Exists(TrustedCopy))
        {
            Console.WriteLine($"the client CA is not in the system trust store ({TrustedCopy} does not exist)");
            return 0;
        }

        File.Delete(TrustedCopy);
        var code = await UpdateTrustStoreAsync();
        if (code == 0)
        {
            Console.WriteLine($"the client CA is no longer trusted ({TrustedCopy} removed); clients verifying STARTTLS certificates will fail");
        }

        return code;
    }

    private static async Task<int> UpdateTrustStoreAsync()
    {
        if (!ExternalProcess.IsInstalled("update-ca-certificates"))
        {
            await Console.Error.WriteLineAsync("smtp-interceptor: update-ca-certificates not found (install the ca-certificates package)");
            return 3;
        }

        var (exitCode, _, error) = await ExternalProcess.RunAsync("update-ca-certificates", ["--fresh"], UpdateTimeout);
        if (exitCode != 0)
        {
            await Console.Error.WriteLineAsync($"smtp-interceptor: update-ca-certificates failed ({exitCode}): {error.Trim()}");
            return 3;
        }

        return 0;
    }
}

/// <summary>The daemon's start-up line for an unusable CA.</summary>
internal static partial class ClientTlsLog
{
    [LoggerMessage(1801, LogLevel.Critical, "cannot offer STARTTLS to clients (ClientTls.Mode Mint): {Reason}")]
    public static partial void ClientCaUnusable(this ILogger logger, string reason);
}
