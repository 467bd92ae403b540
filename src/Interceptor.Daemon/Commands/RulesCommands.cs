using Interceptor.Netfilter;

namespace Interceptor.Daemon.Commands;

/// <summary>The verbs that only look at the configuration or our nft table.</summary>
public static class RulesCommands
{
    public static int CheckConfig(Arguments arguments)
    {
        var (options, spec) = DaemonSetup.Load(arguments.ConfigPath);
        Console.WriteLine($"configuration ok: {arguments.ConfigPath ?? "(built-in defaults)"}");
        Console.WriteLine($"  listen 127.0.0.1 and [::1] port {options.Listen.Port}; intercept ports {string.Join(",", spec.Ports)}; table inet {spec.Table}; exempt uids {string.Join(",", spec.ExemptUids)}");
        return 0;
    }

    public static int PrintRules(Arguments arguments)
    {
        var (_, spec) = DaemonSetup.Load(arguments.ConfigPath);
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
