namespace Interceptor.IntegrationTests;

/// <summary>An upgrade over a configuration the new version refuses, inside the booted container.</summary>
public sealed partial class BootedPackageTests
{
    [Test]
    [Order(9)]
    public async Task An_upgrade_over_a_configuration_this_version_refuses_names_the_problem_in_apts_output()
    {
        // " 4242" was a uid to Interception.ExemptUsers before names and uids were read one way; now it is refused. The
        // postinst's restart then fails, and without a word in apt's output only the journal would say why.
        await Container.CheckedAsync($$"""
            set -e
            cp {{Config}} /root/config.before-upgrade
            sed -i 's/"ExemptUsers": \[/"ExemptUsers": [" 4242", /' {{Config}}
            grep -q '" 4242"' {{Config}}
            """);
        var upgrade = await Container.ExecAsync("apt-get install -y --reinstall --no-install-recommends /root/package.deb 2>&1", TimeSpan.FromMinutes(3));
        var during = (await Container.ExecAsync($"echo \"$(systemctl is-active smtp-interceptor) $(runuser -u {Customer} -- python3 {Scripts}/probe.py)\"")).Stdout.Trim();
        var restored = await Container.CheckedAsync($"""
            set -e
            cp /root/config.before-upgrade {Config}
            systemctl reset-failed smtp-interceptor
            systemctl restart smtp-interceptor
            systemctl is-active smtp-interceptor
            """);

        Assert.Multiple(() =>
        {
            Assert.That(upgrade.Succeeded, Is.True, "apt-get's reinstall itself succeeds\n" + upgrade.Describe());
            Assert.That(upgrade.Stdout, Does.Contain($"smtp-interceptor: this version refuses {Config}, so the daemon will not start"), upgrade.Describe());
            Assert.That(upgrade.Stdout, Does.Contain("  Interception.ExemptUsers[0]: no such user \" 4242\" in the user database (a uid is written in digits alone, without a sign or spaces)"), upgrade.Describe());
            Assert.That(upgrade.Stdout, Does.Contain("then run 'systemctl restart smtp-interceptor'"), upgrade.Describe());
            Assert.That(during, Does.Not.StartWith("active ").And.Not.Contain("fake-mx"), "the daemon did not start, and port 25 stayed closed to the customer");
            Assert.That(restored.Trim(), Is.EqualTo("active"), "the restored configuration starts the daemon for the next step");
        });
        Step($"apt-get reinstall over a refused configuration: apt said why; during it {Customer}'s port 25: {during}; restored: {restored.Trim()}");
    }
}
