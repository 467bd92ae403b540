using System.Globalization;

namespace Interceptor.IntegrationTests;

/// <summary>A real Unix account a client runs as; the daemon must name exactly this uid and user.</summary>
public sealed record TestUser(string Name, uint Uid, uint Gid)
{
    public override string ToString() => $"{Name}({Uid})";
}

/// <summary>
/// Creates the unprivileged users the clients run as, once for the whole run, and deletes them
/// afterwards. Real accounts (not bare numeric uids) because the daemon resolves the name with
/// getpwuid and puts it into the trace header.
/// </summary>
[SetUpFixture]
public sealed class TestUsers
{
    private static readonly string[] CreatedNames = ["smtpi-alice", "smtpi-bob"];
    private static TestUser? _alice;
    private static TestUser? _bob;
    private static TestUser? _nobody;

    public static TestUser Alice => _alice ?? throw new InvalidOperationException("test users not created");
    public static TestUser Bob => _bob ?? throw new InvalidOperationException("test users not created");
    public static TestUser Nobody => _nobody ?? throw new InvalidOperationException("test users not created");

    [OneTimeSetUp]
    public async Task CreateUsers()
    {
        Requirements.Ensure();
        foreach (var name in CreatedNames)
        {
            // An account left by a killed run, or in use by another run on this machine, is reused as it is:
            // deleting it would change the uid under the other run's feet.
            if (await LookUpAsync(name) is null)
            {
                await ProcessRunner.RunCheckedAsync(
                    "useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name);
            }
        }

        _alice = await LookUpAsync("smtpi-alice") ?? throw new InvalidOperationException("smtpi-alice missing after useradd");
        _bob = await LookUpAsync("smtpi-bob") ?? throw new InvalidOperationException("smtpi-bob missing after useradd");
        _nobody = await LookUpAsync("nobody") ?? throw new InvalidOperationException("the system has no user nobody");
    }

    [OneTimeTearDown]
    public async Task DeleteUsers()
    {
        // Several runs on one machine (a developer's parallel checkouts) share the accounts: they set this. Not
        // SMTPI_*: the harness passes its environment on to the CLI, which reads SMTPI_* as configuration keys.
        if (Environment.GetEnvironmentVariable("INTERCEPTOR_TESTS_KEEP_USERS") == "1")
        {
            return;
        }

        foreach (var name in CreatedNames)
        {
            if (await LookUpAsync(name) is not null)
            {
                // Not checked: a failure here must not hide the test results; the next run cleans up anyway.
                await ProcessRunner.RunAsync("userdel", [name], TimeSpan.FromSeconds(30));
            }
        }
    }

    private static async Task<TestUser?> LookUpAsync(string name)
    {
        var uid = await ProcessRunner.RunAsync("id", ["-u", name], TimeSpan.FromSeconds(10));
        var gid = await ProcessRunner.RunAsync("id", ["-g", name], TimeSpan.FromSeconds(10));
        if (!uid.Succeeded || !gid.Succeeded)
        {
            return null;
        }

        return new TestUser(
            name,
            uint.Parse(uid.Stdout.Trim(), CultureInfo.InvariantCulture),
            uint.Parse(gid.Stdout.Trim(), CultureInfo.InvariantCulture));
    }
}
