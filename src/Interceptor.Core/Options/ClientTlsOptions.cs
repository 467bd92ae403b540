namespace Interceptor.Core.Options;

/// <summary>Whether the intercepted client is offered STARTTLS on the local hop (issue 18).</summary>
public enum ClientTlsMode
{
    /// <summary>STARTTLS is never offered (502 when asked): the local hop stays plain text, as it always was.</summary>
    Off,

    /// <summary>
    /// EHLO offers STARTTLS; the handshake presents a certificate for the name the client dialled (its SNI, else the
    /// original destination's address), minted on the fly and signed by the host-local CA below.
    /// </summary>
    Mint,
}

/// <summary>
/// TLS towards the intercepted client. The CA's key can impersonate any TLS server to every program that trusts the CA,
/// so it stays readable by the daemon's user alone (the daemon refuses to start otherwise) and the CA is trusted only
/// when an admin installs it (<c>smtp-interceptor client-ca install</c>).
/// </summary>
public sealed record ClientTlsOptions
{
    public ClientTlsMode Mode { get; init; } = ClientTlsMode.Off;

    /// <summary>The CA certificate (PEM). The package creates it with its key on first install when both are missing.</summary>
    public string CaCertificate { get; init; } = "/etc/smtp-interceptor/client-ca/smtp-interceptor-client-ca.crt";

    /// <summary>The CA's private key (PEM, PKCS#8 or EC); mode 0600 or stricter, owned by the daemon's user.</summary>
    public string CaKey { get; init; } = "/etc/smtp-interceptor/client-ca/smtp-interceptor-client-ca.key";

    /// <summary>How long a minted leaf certificate is valid: short, so one that leaks is soon worthless.</summary>
    [ConfigurationKey("CertificateLifetimeDays")]
    public TimeSpan CertificateLifetime { get; init; } = TimeSpan.FromDays(7);

    /// <summary>Minted certificates kept (least recently used go first); each is one name's certificate and key.</summary>
    public int CacheSize { get; init; } = 1000;
}
