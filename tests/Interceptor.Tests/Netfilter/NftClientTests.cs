using System.Diagnostics;
using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Netfilter;

/// <summary>
/// NftClient against stand-in programs: small shell scripts that record their arguments and stdin and
/// answer the way nft 1.0.6 does (texts copied from real runs). No root and no real nft needed.
/// </summary>
public class NftClientTests
{
    private string directory = string.Empty;

    [SetUp]
    public void CreateDirectory()
    {
        directory = Directory.CreateTempSubdirectory("nft-fake-").FullName;
    }

    [TearDown]
    public void DeleteDirectory()
    {
        Directory.Delete(directory, recursive: true);
    }

    [Test]
    public void A_missing_program_says_how_to_install_nftables()
    {
        var nft = new NftClient(nftPath: Path.Combine(directory, "no-such-nft"));

        Assert.That(
            () => nft.ApplyAsync("table inet t {}\n", CancellationToken.None),
            Throws.InstanceOf<NftNotInstalledException>().With.Message.Contains("apt-get install nftables"));
    }

    [Test]
    public void A_bare_name_not_found_anywhere_is_not_installed_either()
    {
        var nft = new NftClient(nftPath: "nft-that-does-not-exist-anywhere");

        Assert.That(() => nft.ListTableAsync("t", CancellationToken.None), Throws.InstanceOf<NftNotInstalledException>());
    }

    [Test]
    public void A_non_zero_exit_throws_with_the_exit_code_and_the_command()
    {
        var nft = new NftClient(nftPath: "/bin/false");

        var error = Assert.ThrowsAsync<NftCommandException>(() => nft.ListTableAsync("smtp_interceptor", CancellationToken.None));

        Assert.That(error!.ExitCode, Is.EqualTo(1));
        Assert.That(error.Command, Is.EqualTo("/bin/false -j list table inet smtp_interceptor"));
        Assert.That(error.Message, Does.Contain("`/bin/false -j list table inet smtp_interceptor` failed with exit code 1"));
    }

    [Test]
    public async Task Apply_sends_the_script_on_stdin_with_dash_f_dash()
    {
        var nft = new NftClient(nftPath: Fake("exit 0"));

        await nft.ApplyAsync("table inet t {}\n", CancellationToken.None);

        Assert.That(File.ReadAllText(Path.Combine(directory, "args")), Is.EqualTo("-f\n-\n"));
        Assert.That(File.ReadAllText(Path.Combine(directory, "stdin")), Is.EqualTo("table inet t {}\n"));
    }

    [Test]
    public void Apply_reports_nfts_error_text()
    {
        var nft = new NftClient(nftPath: Fake("""
            echo '/dev/stdin:2:33-33: Error: syntax error, unexpected '"'"'}'"'"'' >&2
            exit 1
            """));

        Assert.That(
            () => nft.ApplyAsync("bad\n", CancellationToken.None),
            Throws.InstanceOf<NftCommandException>().With.Message.Contains("Error: syntax error").And.Property("ExitCode").EqualTo(1));
    }

    [Test]
    public void Exit_zero_with_stderr_is_still_a_failure()
    {
        var nft = new NftClient(nftPath: Fake("echo 'Warning: something odd' >&2; exit 0"));

        Assert.That(
            () => nft.ApplyAsync("table inet t {}\n", CancellationToken.None),
            Throws.InstanceOf<NftCommandException>().With.Message.Contains("exited 0 but reported a problem").And.Message.Contains("something odd"));
    }

    [Test]
    public async Task Listing_a_missing_table_returns_null()
    {
        var nft = new NftClient(nftPath: Fake("""
            printf 'Error: No such file or directory\nlist table inet smtp_interceptor\n                ^^^^^^^^^^^^^^^^\n' >&2
            exit 1
            """));

        Assert.That(await nft.ListTableAsync("smtp_interceptor", CancellationToken.None), Is.Null);
    }

    [Test]
    public void A_missing_network_namespace_is_an_error_not_a_missing_table()
    {
        var nft = new NftClient(nftPath: Fake("""echo 'Cannot open network namespace "nf-x": No such file or directory' >&2; exit 255"""));

        Assert.That(
            () => nft.ListTableAsync("smtp_interceptor", CancellationToken.None),
            Throws.InstanceOf<NftCommandException>().With.Message.Contains("ip netns list"));
    }

    [Test]
    public void Permission_errors_get_a_hint()
    {
        var nft = new NftClient(nftPath: Fake("echo 'Error: Could not process rule: Operation not permitted' >&2; exit 1"));

        Assert.That(
            () => nft.ApplyAsync("table inet t {}\n", CancellationToken.None),
            Throws.InstanceOf<NftCommandException>().With.Message.Contains("CAP_NET_ADMIN"));
    }

    [Test]
    public async Task Listing_parses_the_json_and_passes_the_arguments()
    {
        var sample = Path.Combine(directory, "sample.json");
        File.WriteAllText(sample, NetfilterTestData.Read(Path.Combine("Samples", "default.json")));
        var nft = new NftClient(nftPath: Fake($"cat '{sample}'"));

        using var listed = await nft.ListTableAsync("smtp_interceptor", CancellationToken.None);

        Assert.That(File.ReadAllText(Path.Combine(directory, "args")), Is.EqualTo("-j\nlist\ntable\ninet\nsmtp_interceptor\n"));
        Assert.That(RulesetVerifier.FindDifferences(listed!, new RulesetSpec("smtp_interceptor", 10025, [25], [0])), Is.Empty);
    }

    [Test]
    public async Task Listing_a_set_passes_the_arguments_and_a_missing_one_is_null()
    {
        var nft = new NftClient(nftPath: Fake("""
            echo '{"nftables": [{"set": {"family": "inet", "name": "suspended_uids", "table": "smtp_interceptor", "type": "uid", "elem": [1001]}}]}'
            """));

        using var listed = await nft.ListSetAsync("smtp_interceptor", "suspended_uids", CancellationToken.None);

        Assert.That(File.ReadAllText(Path.Combine(directory, "args")), Is.EqualTo("-j\nlist\nset\ninet\nsmtp_interceptor\nsuspended_uids\n"));
        Assert.That(RulesetVerifier.SuspendedUids(listed!, "smtp_interceptor"), Is.EqualTo(new uint[] { 1001 }));

        var missing = new NftClient(nftPath: Fake("""
            printf 'Error: No such file or directory\nlist set inet smtp_interceptor suspended_uids\n                              ^^^^^^^^^^^^^^\n' >&2
            exit 1
            """));
        Assert.That(await missing.ListSetAsync("smtp_interceptor", "suspended_uids", CancellationToken.None), Is.Null);
        Assert.That(() => missing.ListSetAsync("smtp_interceptor", "x y", CancellationToken.None), Throws.ArgumentException);
    }

    [Test]
    public void An_element_update_on_a_missing_table_says_the_table_is_missing()
    {
        var nft = new NftClient(nftPath: Fake("""
            printf 'Error: No such file or directory\nadd element inet smtp_interceptor suspended_uids { 1001 }\n                 ^^^^^^^^^^^^^^^^\n' >&2
            exit 1
            """));
        var manager = new RulesetManager(nft);

        Assert.That(
            () => manager.SuspendAsync("smtp_interceptor", 1001, CancellationToken.None),
            Throws.InstanceOf<NftCommandException>().With.Message.Contains("Hint: the table or its set does not exist"));
        Assert.That(File.ReadAllText(Path.Combine(directory, "stdin")), Is.EqualTo("add element inet smtp_interceptor suspended_uids { 1001 }\n"));
    }

    [Test]
    public async Task Unsuspend_is_one_transaction_that_adds_then_deletes()
    {
        var manager = new RulesetManager(new NftClient(nftPath: Fake("exit 0")));

        await manager.UnsuspendAsync("smtp_interceptor", 1001, CancellationToken.None);

        Assert.That(File.ReadAllText(Path.Combine(directory, "args")), Is.EqualTo("-f\n-\n"));
        Assert.That(
            File.ReadAllText(Path.Combine(directory, "stdin")),
            Is.EqualTo("add element inet smtp_interceptor suspended_uids { 1001 }\ndelete element inet smtp_interceptor suspended_uids { 1001 }\n"));
    }

    [Test]
    public void Output_that_is_not_json_is_an_error()
    {
        var nft = new NftClient(nftPath: Fake("echo 'table inet smtp_interceptor {'"));

        Assert.That(
            () => nft.ListTableAsync("smtp_interceptor", CancellationToken.None),
            Throws.InstanceOf<NftCommandException>().With.Message.Contains("not valid JSON"));
    }

    [Test]
    public async Task Delete_is_one_idempotent_transaction()
    {
        var nft = new NftClient(nftPath: Fake("exit 0"));

        await nft.DeleteTableAsync("smtp_interceptor", CancellationToken.None);

        Assert.That(File.ReadAllText(Path.Combine(directory, "args")), Is.EqualTo("-f\n-\n"));
        Assert.That(
            File.ReadAllText(Path.Combine(directory, "stdin")),
            Is.EqualTo("table inet smtp_interceptor {}\ndelete table inet smtp_interceptor\n"));
    }

    [Test]
    public void Table_names_are_validated_before_anything_runs()
    {
        var nft = new NftClient(nftPath: "/bin/false");

        Assert.That(() => nft.DeleteTableAsync("x {}\nflush ruleset", CancellationToken.None), Throws.ArgumentException);
        Assert.That(() => nft.ListTableAsync("x y", CancellationToken.None), Throws.ArgumentException);
    }

    [Test]
    public void A_hanging_nft_is_killed_after_the_timeout()
    {
        var nft = new NftClient(nftPath: Fake("exec sleep 30")) { Timeout = TimeSpan.FromMilliseconds(300) };
        var watch = Stopwatch.StartNew();

        Assert.That(
            () => nft.ListTableAsync("smtp_interceptor", CancellationToken.None),
            Throws.InstanceOf<NftCommandException>().With.Message.Contains("no answer within 0.3 s, killed").And.Property("ExitCode").EqualTo(-1));
        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)));
    }

    [Test]
    public void Cancellation_kills_nft_and_throws_OperationCanceledException()
    {
        var nft = new NftClient(nftPath: Fake("exec sleep 30"));
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));

        Assert.That(() => nft.ListTableAsync("smtp_interceptor", cancel.Token), Throws.InstanceOf<OperationCanceledException>());
    }

    /// <summary>A stand-in nft that records its arguments and stdin, then runs <paramref name="body"/>.</summary>
    private string Fake(string body)
    {
        var path = Path.Combine(directory, "nft");
        File.WriteAllText(path, $"""
            #!/bin/sh
            printf '%s\n' "$@" > '{directory}/args'
            cat > '{directory}/stdin'
            {body}

            """);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }
}
