namespace Interceptor.IntegrationTests;

/// <summary>A secret file under the unit's sandbox, and an upgrade over a configuration the new version refuses.</summary>
public sealed partial class BootedPackageTests
{
    [Test]
    [Order(9)]
    public async Task A_bearer_token_file_is_read_under_the_units_sandbox_and_guards_the_metrics_endpoint()
    {
        // The reader reopens the file it judged through /proc/thread-self/fd: the unit's ProtectProc=invisible and
        // system-call filter must let it, as the daemon's user, with the package's account owning the file.
        await Container.CheckedAsync($$"""
            set -e
            printf 'booted-token-4711' > /etc/smtp-interceptor/metrics-token
            chown smtp-interceptor /etc/smtp-interceptor/metrics-token
            chmod 600 /etc/smtp-interceptor/metrics-token
            sed -i '0,/^{$/s//{\n  "Metrics": { "Listen": "127.0.0.1:9325", "BearerTokenFile": "\/etc\/smtp-interceptor\/metrics-token" },/' {{Config}}
            smtp-interceptor check-config --config {{Config}} >/dev/null
            systemctl restart smtp-interceptor
            """);
        var scrapes = await Container.CheckedAsync("""
            python3 - <<'EOF'
            import urllib.request, urllib.error
            for token in (None, 'booted-token-4711'):
                request = urllib.request.Request('http://127.0.0.1:9325/metrics', headers={'Authorization': 'Bearer ' + token} if token else {})
                try: print(urllib.request.urlopen(request, timeout=5).status, end=' ')
                except urllib.error.HTTPError as e: print(e.code, end=' ')
            EOF
            """);

        Assert.That(scrapes.Trim(), Is.EqualTo("401 200"), "without the token, then with it");
        Step($"Metrics.BearerTokenFile (smtp-interceptor's, 0600) read under the unit's sandbox: scrapes without and with the token: {scrapes.Trim()}");
    }

    [Test]
    [Order(10)]
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
        var upgrade = await ReinstallAsync();
        var during = (await Container.ExecAsync($"echo \"$(systemctl is-active smtp-interceptor) $(runuser -u {Customer} -- python3 {Scripts}/probe.py)\"")).Stdout.Trim();

        // What root's check-config cannot see: the token is the daemon's user's, mode 0600, but in /root, which that user
        // may not search. The restart fails, and apt's output gives the daemon's own words.
        await Container.CheckedAsync($$"""
            set -e
            cp /root/config.before-upgrade {{Config}}
            install -o smtp-interceptor -m 600 /etc/smtp-interceptor/metrics-token /root/metrics-token
            sed -i 's|/etc/smtp-interceptor/metrics-token|/root/metrics-token|' {{Config}}
            grep -q '/root/metrics-token' {{Config}}
            """);
        var unsearchable = await ReinstallAsync();
        var restored = await Container.CheckedAsync($"""
            set -e
            cp /root/config.before-upgrade {Config}
            rm /root/metrics-token
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
            Assert.That(upgrade.Stdout, Does.Not.Contain("did not start after the upgrade"), "said once, by check-config" + upgrade.Describe());
            Assert.That(during, Does.Not.StartWith("active ").And.Not.Contain("fake-mx"), "the daemon did not start, and port 25 stayed closed to the customer");
            Assert.That(unsearchable.Succeeded, Is.True, unsearchable.Describe());
            Assert.That(unsearchable.Stdout, Does.Not.Contain("this version refuses"), "root's check-config passed it" + unsearchable.Describe());
            Assert.That(unsearchable.Stdout, Does.Contain("smtp-interceptor: the daemon did not start after the upgrade, so port 25 stays closed to customers until it does; it said:"), unsearchable.Describe());
            Assert.That(unsearchable.Stdout, Does.Contain("/root/metrics-token: cannot be read: Permission denied; the daemon's user must be able to search every directory on the path"), unsearchable.Describe());
            Assert.That(restored.Trim(), Is.EqualTo("active"), "the restored configuration starts the daemon for the next step");
        });
        Step($"apt-get reinstall over a refused configuration: apt said why; during it {Customer}'s port 25: {during}; over a token the daemon's user cannot reach, the daemon's words: "
            + unsearchable.Stdout.Split('\n').FirstOrDefault(l => l.Contains("/root/metrics-token:", StringComparison.Ordinal))?.Trim() + $"; restored: {restored.Trim()}");
    }

    private Task<ProcessResult> ReinstallAsync() =>
        Container.ExecAsync("apt-get install -y --reinstall --no-install-recommends /root/package.deb 2>&1", TimeSpan.FromMinutes(3));
}
