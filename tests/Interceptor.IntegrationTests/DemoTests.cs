namespace Interceptor.IntegrationTests;

/// <summary>
/// The README's first command runs <c>smtp-interceptor demo</c>: it must work with no setup and leave nothing behind on the
/// host — no namespace, no state directory, no control socket directory (an installed daemon's paths are the defaults).
/// </summary>
[TestFixture]
[CancelAfter(180_000)]
public sealed class DemoTests
{
    private static readonly string[] HostPaths = ["/var/lib/smtp-interceptor", "/run/smtp-interceptor"];

    [Test]
    public async Task The_demo_relays_one_message_shows_both_tables_and_leaves_nothing_on_the_host()
    {
        var namespacesBefore = await ListNamespacesAsync();
        var pathsBefore = HostPaths.Where(Directory.Exists).ToList();

        var demo = await ProcessRunner.RunAsync(DaemonProcess.DotnetHost, [DaemonProcess.AssemblyPath, "demo"], TimeSpan.FromSeconds(150));
        var namespacesAfter = await ListNamespacesAsync();

        Assert.Multiple(() =>
        {
            Assert.That(demo.ExitCode, Is.Zero, demo.Describe());
            Assert.That(demo.Stdout, Does.Contain("the fake MX received the trace header: X-Interceptor-Origin: uid="), demo.Describe());
            Assert.That(demo.Stdout, Does.Contain("table inet smtp_interceptor {").And.Contain("table inet smtp_interceptor_guard {"), demo.Describe());
            Assert.That(demo.Stdout, Does.Contain("cleaned up"), demo.Describe());
            Assert.That(namespacesAfter, Is.EquivalentTo(namespacesBefore), "the demo's namespace is gone");
            Assert.That(HostPaths.Where(Directory.Exists).ToList(), Is.EquivalentTo(pathsBefore), "the demo created state or runtime directories on the host");
        });
    }

    private static async Task<List<string>> ListNamespacesAsync()
    {
        var listed = await ProcessRunner.RunCheckedAsync("ip", "netns", "list");
        return [.. listed.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[0]).Where(n => n.StartsWith("smtpi-demo", StringComparison.Ordinal))];
    }
}
