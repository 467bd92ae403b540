using Interceptor.Core.Domains;
using Interceptor.Core.Options;
using Interceptor.Daemon.Decide;
using Interceptor.Smtp.Data;
using Interceptor.Smtp.Identity;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Domains;

/// <summary>
/// Issue 17's stages in the message pipeline: the From policy (when a domain map exists and <c>FromPolicy.Mode</c> is not
/// Off) and DKIM signing (<c>Dkim.Enabled</c>), last, right before the upstream. With neither on, no stage is added.
/// </summary>
public static class MailIdentitySetup
{
    /// <summary>Why the daemon must not start with these options (the key directory is open to others), or null.</summary>
    public static string? StartupProblem(InterceptorOptions options) =>
        options.Dkim.Enabled ? DkimKeyStore.DirectoryProblem(options.Dkim.KeyDirectory) : null;

    public static bool FromPolicyActive(InterceptorOptions options) =>
        options.FromPolicy.Mode != FromPolicyMode.Off && options.Domains.Source != DomainSource.None;

    /// <summary>The identity stages that are on, in order (From policy, then DKIM signing, which must stay last).</summary>
    public static IReadOnlyList<IMessageStage> Stages(InterceptorOptions options, IDomainMapSource domains, ILoggerFactory loggers, AlertCommand? alert)
    {
        var stages = new List<IMessageStage>();
        var logger = loggers.CreateLogger("identity");
        var subdomains = options.Domains.IncludeSubdomains;
        if (FromPolicyActive(options))
        {
            stages.Add(new FromPolicyStage(options.FromPolicy, subdomains, domains, logger));
        }

        if (options.Dkim.Enabled)
        {
            var keys = new DkimKeyStore(options.Dkim.KeyDirectory, options.Dkim.Selector, [.. options.Dkim.Algorithms]);
            Action<string, string>? keyAlert = alert is null ? null : (domain, problem) => _ = alert.NotifyDkimKeyAsync(domain, problem, CancellationToken.None);
            stages.Add(new DkimSigningStage(keys, domains, subdomains, options.Dkim.MaxSize.Bytes, logger, keyAlert));
        }

        return stages;
    }
}
