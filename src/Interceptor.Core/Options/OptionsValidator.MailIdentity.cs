namespace Interceptor.Core.Options;

/// <summary>Issue 17's keys: <c>Domains.*</c>, <c>FromPolicy.*</c>, <c>Dkim.*</c>.</summary>
public static partial class OptionsValidator
{
    /// <summary>The DKIM algorithms the signer knows (RFC 6376, RFC 8463).</summary>
    public static readonly IReadOnlyList<string> DkimAlgorithms = ["rsa-sha256", "ed25519-sha256"];

    private static void CheckMailIdentity(InterceptorOptions options, Action<bool, string, string> check)
    {
        var domains = options.Domains;
        check(Enum.IsDefined(domains.Source), "Domains.Source", "must be None, Cpanel, DirectAdmin or File");
        check(domains.Source != DomainSource.File || Path.IsPathRooted(domains.File), "Domains.File", "Domains.Source File needs an absolute path here");
        check(Enum.IsDefined(options.FromPolicy.Mode), "FromPolicy.Mode", "must be Off, Log or Refuse");
        for (var i = 0; i < options.FromPolicy.AllowedDomains.Count; i++)
        {
            var domain = options.FromPolicy.AllowedDomains[i];
            check(HostName().IsMatch(domain), $"FromPolicy.AllowedDomains[{i}]", $"\"{domain}\" is not a domain name");
        }

        var dkim = options.Dkim;
        check(Path.IsPathRooted(dkim.KeyDirectory), "Dkim.KeyDirectory", "must be an absolute path");
        check(HostName().IsMatch(dkim.Selector), "Dkim.Selector", $"\"{dkim.Selector}\" is not a DNS label sequence");
        check(dkim.Algorithms.Count > 0, "Dkim.Algorithms", "at least one of rsa-sha256, ed25519-sha256");
        for (var i = 0; i < dkim.Algorithms.Count; i++)
        {
            check(DkimAlgorithms.Contains(dkim.Algorithms[i]), $"Dkim.Algorithms[{i}]", $"\"{dkim.Algorithms[i]}\" is not rsa-sha256 or ed25519-sha256");
        }

        check(dkim.MaxSize.Bytes >= 1024, "Dkim.MaxBytes", "must be at least 1024");
        check(!dkim.Enabled || domains.Source != DomainSource.None, "Dkim.Enabled", "signing needs a domain map: set Domains.Source");
    }
}
