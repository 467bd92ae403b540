using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Interceptor.Core.Pool;

/// <summary>What one DNSBL answer means for the address looked up.</summary>
public enum DnsblVerdict
{
    /// <summary>No record (NXDOMAIN or no A record): the zone does not list the address.</summary>
    NotListed,

    /// <summary>An answer in 127.0.0.2-127.0.0.255: listed.</summary>
    Listed,

    /// <summary>
    /// 127.255.255.0/24 (Spamhaus: the query was refused, e.g. through a public resolver; "do not act on them"), any
    /// other answer, or no answer in time: nothing is known. Logged and alerted, never a listing, never a clean check.
    /// </summary>
    ResolverError,
}

/// <summary>Query names and answer classification for DNS blocklists (RFC 5782).</summary>
public static class DnsblAnswer
{
    public static DnsblVerdict Classify(IPAddress answer)
    {
        ArgumentNullException.ThrowIfNull(answer);
        if (answer.AddressFamily != AddressFamily.InterNetwork)
        {
            return DnsblVerdict.ResolverError;
        }

        var b = answer.GetAddressBytes();
        if (b[0] != 127)
        {
            // A resolver that rewrites NXDOMAIN to an address of its own (some ISPs do) must not burn anything.
            return DnsblVerdict.ResolverError;
        }

        if (b[1] == 255 && b[2] == 255)
        {
            return DnsblVerdict.ResolverError;
        }

        return b[1] == 0 && b[2] == 0 && b[3] >= 2 ? DnsblVerdict.Listed : DnsblVerdict.ResolverError;
    }

    /// <summary>The verdict for a set of A records: any listing wins; otherwise any error; none at all is not listed.</summary>
    public static DnsblVerdict Classify(IEnumerable<IPAddress> answers)
    {
        var verdicts = answers.Select(Classify).ToList();
        return verdicts.Contains(DnsblVerdict.Listed) ? DnsblVerdict.Listed
            : verdicts.Count > 0 ? DnsblVerdict.ResolverError
            : DnsblVerdict.NotListed;
    }

    /// <summary>
    /// The name to look up: the IPv4 octets reversed (<c>2.0.0.127.zen.spamhaus.org</c>), or the 32 nibbles of an
    /// IPv6 address reversed, before the zone.
    /// </summary>
    public static string QueryName(IPAddress address, string zone)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentException.ThrowIfNullOrWhiteSpace(zone);
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        var bytes = address.GetAddressBytes();
        var name = new StringBuilder();
        for (var i = bytes.Length - 1; i >= 0; i--)
        {
            if (address.AddressFamily == AddressFamily.InterNetwork)
            {
                name.Append(bytes[i].ToString(CultureInfo.InvariantCulture)).Append('.');
            }
            else
            {
                name.Append(HexDigit(bytes[i] & 0xF)).Append('.').Append(HexDigit(bytes[i] >> 4)).Append('.');
            }
        }

        return name.Append(zone.TrimEnd('.')).ToString();
    }

    private static char HexDigit(int value) => "0123456789abcdef"[value];
}
