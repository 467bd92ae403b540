using System.Net;
using System.Net.Http.Headers;
using Interceptor.Core.Options;
using Interceptor.Daemon.Configuration;
using Interceptor.Daemon.Metrics;
using Microsoft.Extensions.Logging;

namespace Interceptor.Tests.Daemon.Metrics;

/// <summary>
/// Metrics.BearerTokenFile: a file only the daemon's user may read, holding one token; with it, a request without
/// <c>Authorization: Bearer TOKEN</c> gets 401 and a log line naming its owner, and the exporter never sees it.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class MetricsTokenTests
{
    private const string Token = "0123456789abcdef0123456789abcdef";

    private string _dir = null!;

    [SetUp]
    public void CreateDirectory() => _dir = Directory.CreateTempSubdirectory("smtpi-token-").FullName;

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void Unset_asks_for_no_token()
    {
        Assert.That(MetricsToken.Load(new MetricsOptions()), Is.Null);
    }

    [Test]
    public void A_private_file_with_one_token_and_a_newline_is_the_token()
    {
        var token = MetricsToken.Load(Options(Write(Token + "\n")))!;

        Assert.Multiple(() =>
        {
            Assert.That(token.Admits($"Bearer {Token}"), Is.True);
            Assert.That(token.Admits($"Bearer {Token}x"), Is.False, "longer");
            Assert.That(token.Admits($"Bearer {Token[..^1]}"), Is.False, "shorter");
            Assert.That(token.Admits($"Bearer {Token[..^1]}0"), Is.False, "the last character differs");
            Assert.That(token.Admits($"Basic {Token}"), Is.False);
            Assert.That(token.Admits(Token), Is.False, "no scheme");
            Assert.That(token.Admits(new Microsoft.Extensions.Primitives.StringValues([$"Bearer {Token}", $"Bearer {Token}"])), Is.False, "two headers");
            Assert.That(token.Admits(Microsoft.Extensions.Primitives.StringValues.Empty), Is.False, "none");
            Assert.That(token.ToString(), Does.Not.Contain(Token));
        });
    }

    [TestCase(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, "mode 0640 lets others than the daemon's user read the metrics endpoint's token (they may have already: change the metrics endpoint's token as well); run chmod 600")]
    [TestCase(UnixFileMode.UserRead | UnixFileMode.OtherRead, "mode 0404 lets others than the daemon's user read the metrics endpoint's token (they may have already: change the metrics endpoint's token as well); run chmod 600")]
    public void A_file_others_may_read_is_refused_naming_its_mode(UnixFileMode mode, string problem)
    {
        var path = Write(Token, mode);

        var error = Assert.Throws<ConfigurationException>(() => MetricsToken.Load(Options(path)))!;

        Assert.That(error.Errors, Is.EqualTo(new[] { $"Metrics.BearerTokenFile: {path}: {problem} {path}" }));
    }

    [TestCase("", "is empty")]
    [TestCase("\n", "is empty")]
    [TestCase("short-token", "holds a token of 11 characters; use at least 16 (e.g. openssl rand -hex 32)")]
    [TestCase("0123456789abcdef 0123456789abcdef", "holds something other than one token (one line of letters, digits and -._~+/=)")]
    [TestCase("0123456789abcdef\n0123456789abcdef", "holds something other than one token (one line of letters, digits and -._~+/=)")]
    [TestCase("Bearer 0123456789abcdef", "holds something other than one token (one line of letters, digits and -._~+/=)")]
    public void A_file_that_is_not_one_token_is_refused_without_showing_it(string text, string problem)
    {
        var path = Write(text);

        var error = Assert.Throws<ConfigurationException>(() => MetricsToken.Load(Options(path)))!;

        Assert.That(error.Errors, Is.EqualTo(new[] { $"Metrics.BearerTokenFile: {path}: {problem}" }));
    }

    [Test]
    public void A_missing_file_or_a_link_is_refused()
    {
        var missing = Path.Combine(_dir, "missing");
        var link = Path.Combine(_dir, "link");
        File.CreateSymbolicLink(link, Write(Token));

        Assert.Multiple(() =>
        {
            Assert.That(() => MetricsToken.Load(Options(missing)), Throws.TypeOf<ConfigurationException>()
                .With.Property(nameof(ConfigurationException.Errors)).EqualTo(new[] { $"Metrics.BearerTokenFile: {missing}: cannot be read: No such file or directory"
                    + (missing.StartsWith("/tmp/", StringComparison.Ordinal) ? " (under the packaged unit the daemon does not see /home, /root or /run/user, and has a /tmp and /var/tmp of its own: ProtectHome=yes, PrivateTmp=yes)" : "") }));
            Assert.That(() => MetricsToken.Load(Options(link)), Throws.TypeOf<ConfigurationException>()
                .With.Property(nameof(ConfigurationException.Errors)).EqualTo(new[] { $"Metrics.BearerTokenFile: {link}: is a symbolic link; Metrics.BearerTokenFile must name the file itself" }));
        });
    }

    [Test]
    public void The_options_need_an_absolute_path_and_an_endpoint()
    {
        var relative = OptionsValidator.Validate(new InterceptorOptions { Metrics = new MetricsOptions { Listen = "127.0.0.1:9325", BearerTokenFile = "token" } });
        var noEndpoint = OptionsValidator.Validate(new InterceptorOptions { Metrics = new MetricsOptions { BearerTokenFile = "/etc/token" } });

        Assert.That(relative, Does.Contain("Metrics.BearerTokenFile: \"token\" must be an absolute path"));
        Assert.That(noEndpoint, Does.Contain("Metrics.BearerTokenFile: is set but Metrics.Listen is empty: there is no endpoint for the token to guard"));
    }

    [Test]
    public async Task With_a_token_a_request_without_it_gets_401_and_a_line_naming_its_owner_and_one_with_it_the_figures()
    {
        using var metrics = new DaemonMetrics(perUser: false);
        var log = new RecordingLogger();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(new MetricsEndpointTests.OneLoggerProvider(log)));
        await using var endpoint = new MetricsEndpoint(new IPEndPoint(IPAddress.Loopback, 0), metrics.Sources, loggers)
        {
            OwnerOf = _ => 0u,
            Token = MetricsToken.Load(Options(Write(Token))),
        };
        await endpoint.StartAsync(CancellationToken.None);
        using var http = new HttpClient { BaseAddress = new Uri($"http://{endpoint.BoundEndpoint}/"), Timeout = TimeSpan.FromSeconds(10) };

        using var without = await http.GetAsync(new Uri("metrics", UriKind.Relative));
        using var wrong = new HttpRequestMessage(HttpMethod.Get, "metrics") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", Token.ToUpperInvariant()) } };
        using var wrongResponse = await http.SendAsync(wrong);
        using var right = new HttpRequestMessage(HttpMethod.Get, "metrics") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", Token) } };
        using var rightResponse = await http.SendAsync(right);
        var body = await rightResponse.Content.ReadAsStringAsync();
        var deniedBody = await without.Content.ReadAsStringAsync();

        Assert.Multiple(() =>
        {
            Assert.That(without.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
            Assert.That(without.Headers.WwwAuthenticate.ToString(), Is.EqualTo("Bearer realm=\"smtp-interceptor\""));
            Assert.That(deniedBody, Is.Empty, "no figures without the token");
            Assert.That(wrongResponse.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
            Assert.That(rightResponse.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(body, Does.Contain("smtpi_"), "the exporter's figures");
            Assert.That(log.Lines.Where(l => l.StartsWith("metrics: 1 requests without the token of Metrics.BearerTokenFile answered 401", StringComparison.Ordinal)).ToList(),
                Has.Count.EqualTo(1).And.Some.Contains("the last from uid 0 (root)"), "one line, the second refusal within the interval is counted for the next");
            Assert.That(log.Lines, Has.None.Contains(Token));
        });
    }

    private static MetricsOptions Options(string path) => new() { Listen = "127.0.0.1:9325", BearerTokenFile = path };

    private string Write(string text, UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite)
    {
        var path = Path.Combine(_dir, $"token-{Guid.NewGuid():N}");
        File.WriteAllText(path, text);
        File.SetUnixFileMode(path, mode);
        return path;
    }
}
