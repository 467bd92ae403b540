using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Crypto.Signers;
using Org.BouncyCastle.OpenSsl;
using Org.BouncyCastle.Security;
using Org.BouncyCastle.X509;

namespace Interceptor.Smtp.Identity;

/// <summary>
/// A DKIM private key read from PEM: RSA (PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY") signs rsa-sha256, Ed25519
/// (PKCS#8, as <c>openssl genpkey -algorithm ed25519</c> writes it) signs ed25519-sha256 (RFC 8463). BouncyCastle does
/// the arithmetic because .NET has no Ed25519; it comes with MimeKit anyway.
/// </summary>
public sealed class DkimKey
{
    private readonly AsymmetricKeyParameter _private;

    private DkimKey(AsymmetricKeyParameter privateKey, string algorithm, string keyType, byte[] publicKey)
    {
        _private = privateKey;
        Algorithm = algorithm;
        KeyType = keyType;
        PublicKey = publicKey;
    }

    /// <summary>rsa-sha256 or ed25519-sha256.</summary>
    public string Algorithm { get; }

    /// <summary>The k= of the DNS record: rsa or ed25519.</summary>
    public string KeyType { get; }

    /// <summary>The p= of the DNS record: SubjectPublicKeyInfo for RSA, the raw 32 bytes for Ed25519 (RFC 8463 4.2).</summary>
    public byte[] PublicKey { get; }

    /// <summary>The TXT record to publish at selector._domainkey.domain.</summary>
    public string DnsRecord => $"v=DKIM1; k={KeyType}; p={Convert.ToBase64String(PublicKey)}";

    /// <exception cref="InvalidDataException">Not a PEM RSA or Ed25519 private key (the message says what it is).</exception>
    public static DkimKey Parse(string pem)
    {
        object? read;
        try
        {
            using var text = new StringReader(pem);
            read = new PemReader(text).ReadObject();
        }
        catch (Exception e) when (e is IOException or PemException or ArgumentException or InvalidCastException)
        {
            throw new InvalidDataException($"not a PEM private key ({e.Message})", e);
        }

        var key = read switch
        {
            AsymmetricCipherKeyPair pair => pair.Private,
            AsymmetricKeyParameter { IsPrivate: true } single => single,
            _ => throw new InvalidDataException(read is null ? "no PEM block found" : $"a {read.GetType().Name}, not a private key"),
        };
        return key switch
        {
            RsaPrivateCrtKeyParameters rsa => new DkimKey(rsa, "rsa-sha256", "rsa",
                SubjectPublicKeyInfoFactory.CreateSubjectPublicKeyInfo(new RsaKeyParameters(false, rsa.Modulus, rsa.PublicExponent)).GetEncoded()),
            Ed25519PrivateKeyParameters ed => new DkimKey(ed, "ed25519-sha256", "ed25519", ed.GeneratePublicKey().GetEncoded()),
            _ => throw new InvalidDataException($"a {key.GetType().Name}; DKIM needs RSA or Ed25519"),
        };
    }

    /// <summary>
    /// Signs the canonical header data: RSASSA-PKCS1-v1_5 with SHA-256 for RSA; for Ed25519, PureEdDSA over the data's
    /// SHA-256 digest (RFC 8463 3).
    /// </summary>
    public byte[] Sign(byte[] headerData)
    {
        ISigner signer = KeyType == "rsa" ? SignerUtilities.GetSigner("SHA256withRSA") : new Ed25519Signer();
        var input = KeyType == "rsa" ? headerData : System.Security.Cryptography.SHA256.HashData(headerData);
        signer.Init(true, _private);
        signer.BlockUpdate(input, 0, input.Length);
        return signer.GenerateSignature();
    }
}
