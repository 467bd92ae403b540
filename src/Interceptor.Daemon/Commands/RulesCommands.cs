using Interceptor.Daemon.Configuration;
using Interceptor.Daemon.Intercept;
using Interceptor.Netfilter;

namespace Interceptor.Daemon.Commands;

/// <summary>The verbs that only look at the configuration or our nft table.</summary>
public static class RulesCommands
{
    public static int CheckConfig(Arguments arguments)
    {
        var account = DaemonAccount.Resolve(arguments.DaemonUser);
        var (options, spec) = DaemonSetup.Load(arguments.ConfigPath, daemonUid: account.Uid);

        // Not a key's syntax but the key on this host: `run` refuses such a port (exit 1), so say so before it does.
        if (ListenerGuard.UnprivilegedPortProblem(options.Listen.Port) is { } unprivileged)
        {
            Console.Error.WriteLine($"smtp-interceptor: invalid configuration for this host:\n  {unprivileged}");
            return 1;
        }

        // The files it names, opened as run will open them (credentials, each relay's CA, the client CA); the private ones
        // must be the daemon's user's, whoever checks, and every one must be within that user's reach.
        var (primary, primaryProblems) = DaemonAccount.PrimaryGroupNamed(arguments.DaemonGroup);
        var (groups, groupProblems) = DaemonAccount.GroupsNamed(arguments.DaemonGroups);
        var problems = primaryProblems.Concat(groupProblems)
            .Concat(ReferencedFiles.Problems(options, account.Uid, groups, ReferencedFiles.HiddenBy(arguments.DaemonSandbox), primary));
        if (problems.ToList() is { Count: > 0 } files)
        {
            // Paths in these lines may come from a customer's link targets: escaped, so no control sequence reaches the
            // admin's terminal or apt's log, and no line break forges a line.
            Console.Error.WriteLine("smtp-interceptor: invalid configuration for this host:\n  " + string.Join("\n  ", files.Select(Control.TerminalText.Escape)));
            return 1;
        }

        Console.WriteLine($"configuration ok: {arguments.ConfigPath ?? "(built-in defaults)"}");
        Console.WriteLine($"  listen 127.0.0.1 and [::1] port {options.Listen.Port}; intercept ports {string.Join(",", spec.Ports)}; table inet {spec.Table}; exempt uids {string.Join(",", spec.ExemptUids)}");
        Console.WriteLine($"  secret files' owner and mode, and the reach of every file it reads at start, checked for the daemon's user, {account.Description}{(account.InsteadOfCaller ? " (the package's account; --daemon-user for another)" : "")}");
        return 0;
    }

    public static int PrintRules(Arguments arguments)
    {
        var account = DaemonAccount.Resolve(arguments.DaemonUser);
        var (options, spec) = DaemonSetup.Load(arguments.ConfigPath, daemonUid: account.Uid);
        if (account.InsteadOfCaller)
        {
            // Said on stderr: stdout is the script nft reads.
            Console.Error.WriteLine($"smtp-interceptor: rendered for the daemon's user, {account.Description}, the package's account (--daemon-user for a daemon run as another)");
        }

        // No daemon listens on the NFLOG group yet (its install adds the log statements once it has bound it), and a kernel
        // without NFLOG would refuse the whole table.
        spec = spec with { StrayLogGroup = 0 };

        // The boot unit pipes this into nft before the daemon runs. Failing here would load no table at all and leave
        // port 25 open, and a redirect would hand it to whoever binds the port: print the lockdown form instead (exit 0).
        if (ListenerGuard.UnprivilegedPortProblem(options.Listen.Port) is { } unprivileged)
        {
            Console.Error.WriteLine($"smtp-interceptor: {unprivileged}; printing the lockdown table (no redirect: SMTP is refused to non-exempt users)");
            spec = spec with { Lockdown = true };
        }

        Console.Write(RulesetRenderer.Render(spec));
        return 0;
    }

    public static async Task<int> RemoveRulesAsync(Arguments arguments)
    {
        var (_, spec) = DaemonSetup.Load(arguments.ConfigPath);
        await new RulesetManager(new NftClient()).RemoveAsync(spec.Table, CancellationToken.None);
        Console.WriteLine($"table inet {spec.Table} removed: port {string.Join(",", spec.Ports)} is no longer intercepted");
        return 0;
    }
}
