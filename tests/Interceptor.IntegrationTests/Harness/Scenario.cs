namespace Interceptor.IntegrationTests;

/// <summary>
/// Everything one test runs against: its own namespace, directory, fake MX and daemon. Each test
/// gets a fresh one so no state (nft table, counters, connections) leaks between tests, and
/// disposal tears it all down in reverse order even when the test or the setup failed.
/// </summary>
public sealed class Scenario : IAsyncDisposable
{
    private Scenario(NetworkNamespace ns, TestDirectory dir)
    {
        Ns = ns;
        Dir = dir;
    }

    public NetworkNamespace Ns { get; }
    public TestDirectory Dir { get; }
    public FakeMx? Mx { get; private set; }
    public DaemonProcess? Daemon { get; private set; }

    public FakeMx RequireMx => Mx ?? throw new InvalidOperationException("this scenario has no fake MX");
    public DaemonProcess RequireDaemon => Daemon ?? throw new InvalidOperationException("this scenario has no daemon");

    /// <param name="script">Fake MX behaviour; ignored when <paramref name="startMx"/> is false.</param>
    /// <param name="config">Daemon config; ignored when <paramref name="startDaemon"/> is false.</param>
    /// <param name="mxListen">Fake MX addresses; <see cref="FakeMx.DefaultListen"/> when null.</param>
    public static async Task<Scenario> StartAsync(
        FakeMxScript? script = null, DaemonConfig? config = null, bool startMx = true, bool startDaemon = true, IReadOnlyList<string>? mxListen = null)
    {
        Requirements.Ensure();
        var ns = await NetworkNamespace.CreateAsync();
        var scenario = new Scenario(ns, new TestDirectory());
        try
        {
            if (startMx)
            {
                scenario.Mx = await FakeMx.StartAsync(ns, scenario.Dir, script, mxListen);
            }

            if (startDaemon)
            {
                scenario.Daemon = await DaemonProcess.StartAsync(ns, scenario.Dir, config);
            }

            return scenario;
        }
        catch
        {
            await scenario.DisposeAsync();
            throw;
        }
    }

    /// <summary>Daemon output and fake MX session log, appended to assertion messages.</summary>
    public string Describe() =>
        (Daemon is null ? "" : "\n" + Daemon.Transcript()) + (Mx is null ? "" : "\n" + Mx.Transcript());

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (Daemon is not null)
            {
                await Daemon.DisposeAsync();
            }

            if (Mx is not null)
            {
                await TestContext.Out.WriteLineAsync(Mx.Transcript());
                await Mx.DisposeAsync();
            }
        }
        finally
        {
            await Ns.DisposeAsync();
            Dir.Dispose();
        }
    }
}
