using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Interceptor.Smtp.Tls;

/// <summary>The CA cannot be used: the message names the key and file and says what to do.</summary>
public sealed class ClientTlsSetupException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The host-local CA that signs the certificates shown to intercepted clients (issue 18). Whoever holds its key can
/// impersonate any TLS server to the programs of this host that trust it, so the key must be readable by the daemon's
/// user alone: <see cref="Load"/> refuses a key file that grants anything to group or others.
/// </summary>
public sealed class ClientCertificateAuthority : IDisposable
{
    /// <summary>What the CA's subject says, so that nobody who finds it in a trust store wonders what it is.</summary>
    public const string SubjectPrefix = "smtp-interceptor local interception CA";

    private const UnixFileMode GroupOrOthers =
        UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute |
        UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    private readonly TimeProvider _time;

    private ClientCertificateAuthority(X509Certificate2 certificate, TimeProvider time)
    {
        Certificate = certificate;
        _time = time;
    }

    /// <summary>The CA certificate, with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>The clock leaves are minted by (and the cache renews them by).</summary>
    public TimeProvider Time => _time;

    /// <summary>Reads the CA (PEM certificate, PEM key) and checks that it can sign and that only its owner can read the key.</summary>
    public static ClientCertificateAuthority Load(string certificatePath, string keyPath, TimeProvider? time = null)
    {
        time ??= TimeProvider.System;
        if (!File.Exists(keyPath))
        {
            throw new ClientTlsSetupException($"ClientTls.CaKey: {keyPath} does not exist (create the CA with `smtp-interceptor client-ca create`)");
        }

        UnixFileMode mode;
        try
        {
            mode = File.GetUnixFileMode(keyPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Removed since the look above (a renewal under way, while the daemon reads it again).
            throw new ClientTlsSetupException($"ClientTls.CaKey: cannot read the mode of {keyPath}: {e.Message}", e);
        }

        if ((mode & GroupOrOthers) != 0)
        {
            throw new ClientTlsSetupException(
                $"ClientTls.CaKey: {keyPath} has mode {ModeText(mode)}: users other than its owner can use the CA's key, which can impersonate " +
                "any TLS server to programs that trust the CA; make it mode 0600, owned by the daemon's user");
        }

        X509Certificate2 certificate;
        try
        {
            certificate = X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new ClientTlsSetupException($"ClientTls.CaCertificate: cannot load {certificatePath} with the key {keyPath}: {e.Message}", e);
        }

        bool isCa;
        try
        {
            // Decoded here, not when the file was read: a malformed extension throws now.
            isCa = certificate.Extensions.OfType<X509BasicConstraintsExtension>().FirstOrDefault() is { CertificateAuthority: true };
        }
        catch (CryptographicException e)
        {
            certificate.Dispose();
            throw new ClientTlsSetupException($"ClientTls.CaCertificate: {certificatePath} has a malformed basic constraints extension: {e.Message}", e);
        }

        if (!isCa)
        {
            certificate.Dispose();
            throw new ClientTlsSetupException($"ClientTls.CaCertificate: {certificatePath} is not a CA certificate (basic constraints CA:TRUE missing)");
        }

        // Read before the disposal below: the message names them (read after it, they threw a CryptographicException that
        // hid the reason).
        var (notBefore, notAfter) = (certificate.NotBefore.ToUniversalTime(), certificate.NotAfter.ToUniversalTime());
        var now = time.GetUtcNow();
        if (notAfter <= now.UtcDateTime || notBefore > now.UtcDateTime)
        {
            certificate.Dispose();
            throw new ClientTlsSetupException($"ClientTls.CaCertificate: {certificatePath} is not valid now (valid {notBefore:u} to {notAfter:u})");
        }

        return new ClientCertificateAuthority(certificate, time);
    }

    /// <summary>
    /// Writes a new CA (ECDSA P-256, ten years) for <paramref name="hostName"/>: the key with mode 0600 from its first byte,
    /// the certificate 0644. Refuses to overwrite either file.
    /// </summary>
    public static void Create(string certificatePath, string keyPath, string hostName, TimeProvider? time = null)
    {
        foreach (var path in new[] { certificatePath, keyPath })
        {
            if (File.Exists(path))
            {
                throw new ClientTlsSetupException($"{path} exists; remove both files first to replace the CA");
            }
        }

        var now = (time ?? TimeProvider.System).GetUtcNow();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var subject = new X500DistinguishedNameBuilder();
        subject.AddOrganizationName("smtp-interceptor");
        subject.AddCommonName($"{SubjectPrefix} ({hostName})");
        var request = new CertificateRequest(subject.Build(), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        using var certificate = request.CreateSelfSigned(now.AddHours(-1), now.AddYears(10));

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(keyPath))!);
        using (var keyFile = new FileStream(keyPath, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        using (var writer = new StreamWriter(keyFile))
        {
            writer.Write(key.ExportPkcs8PrivateKeyPem());
        }

        File.WriteAllText(certificatePath, certificate.ExportCertificatePem() + "\n");
        File.SetUnixFileMode(certificatePath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
    }

    /// <summary>
    /// A leaf certificate (with its new ECDSA P-256 key) for a DNS name or, when <paramref name="name"/> is an address,
    /// for that IP address; valid from an hour ago (clients' clocks drift) for <paramref name="lifetime"/>, never outside
    /// the CA's own validity (a CA made minutes ago, one about to expire).
    /// </summary>
    /// <exception cref="CryptographicException">The CA is not valid now (it expired while the daemon ran).</exception>
    public X509Certificate2 Mint(string name, TimeSpan lifetime)
    {
        var now = _time.GetUtcNow();
        var (caFrom, caUntil) = (new DateTimeOffset(Certificate.NotBefore.ToUniversalTime()), new DateTimeOffset(Certificate.NotAfter.ToUniversalTime()));
        var notBefore = now.AddHours(-1) < caFrom ? caFrom : now.AddHours(-1);
        var notAfter = now + lifetime > caUntil ? caUntil : now + lifetime;
        if (now >= caUntil || now < caFrom)
        {
            throw new CryptographicException(
                $"the client CA {Certificate.Subject} is not valid now ({caFrom:u} to {caUntil:u}): make a new one (smtp-interceptor client-ca create; README, STARTTLS for intercepted clients): the daemon takes it within seconds");
        }

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var names = new SubjectAlternativeNameBuilder();
        var isAddress = IPAddress.TryParse(name, out var address);
        if (isAddress)
        {
            names.AddIpAddress(address!);
        }
        else
        {
            names.AddDnsName(name);
        }

        var subject = new X500DistinguishedNameBuilder();
        subject.AddCommonName(name);
        var request = new CertificateRequest(subject.Build(), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(names.Build(critical: false));
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Certificate, includeKeyIdentifier: true, includeIssuerAndSerial: false));

        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F; // a positive serial number (RFC 5280 4.1.2.2)
        using var unkeyed = request.Create(Certificate, notBefore, notAfter, serial);
        return unkeyed.CopyWithPrivateKey(key);
    }

    private static string ModeText(UnixFileMode mode) => "0" + Convert.ToString((int)mode & 0xFFF, 8);

    public void Dispose() => Certificate.Dispose();
}
