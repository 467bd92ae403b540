using Interceptor.Core.Net;
using Interceptor.Core.Options;

namespace Interceptor.Tests.Core.Net;

public class ScanEndpointTests
{
    [TestCase(ScanEngine.Spamd, "", "127.0.0.1:783")]
    [TestCase(ScanEngine.Rspamd, "", "127.0.0.1:11333")]
    [TestCase(ScanEngine.Spamd, "10.0.0.5:7830", "10.0.0.5:7830")]
    [TestCase(ScanEngine.Spamd, "[::1]:783", "[::1]:783")]
    [TestCase(ScanEngine.Spamd, "scanner.internal:783", "scanner.internal:783")]
    [TestCase(ScanEngine.Spamd, "unix:/run/spamd.sock", "unix:/run/spamd.sock")]
    [TestCase(ScanEngine.Rspamd, "http://127.0.0.1:11333/", "127.0.0.1:11333")]
    [TestCase(ScanEngine.Rspamd, "unix:/run/rspamd/normal.sock", "unix:/run/rspamd/normal.sock")]
    public void Accepted_endpoints_parse_to_where_the_client_connects(ScanEngine engine, string text, string expected)
    {
        var endpoint = ScanEndpoint.Parse(engine, text, out var problem);

        Assert.That(problem, Is.Null);
        Assert.That(endpoint!.ToString(), Is.EqualTo(expected));
    }

    [TestCase(ScanEngine.Spamd, "127.0.0.1", "is not host:port")]
    [TestCase(ScanEngine.Spamd, "127.0.0.1:0", "is not host:port")]
    [TestCase(ScanEngine.Spamd, "http://127.0.0.1:783", "is not host:port")]
    [TestCase(ScanEngine.Spamd, "unix:run/spamd.sock", "unix:/absolute/path")]
    [TestCase(ScanEngine.Rspamd, "https://127.0.0.1:11333", "is not http://host:port")]
    public void Wrong_endpoints_name_the_problem(ScanEngine engine, string text, string problem)
    {
        Assert.That(ScanEndpoint.Parse(engine, text, out var found), Is.Null);
        Assert.That(found, Does.Contain(problem));
    }

    [Test]
    public void The_validator_names_each_scan_key_it_refuses()
    {
        var options = new InterceptorOptions
        {
            Scan = new ScanOptions { Engine = ScanEngine.Spamd, Endpoint = "nowhere", Timeout = TimeSpan.Zero, MaxSize = ByteSize.FromBytes(10), RejectScore = 5, HoldScore = 6 },
        };

        var errors = OptionsValidator.Validate(options);

        Assert.That(errors, Has.Some.StartWith("Scan.Endpoint: \"nowhere\" is not host:port"));
        Assert.That(errors, Has.Some.StartWith("Scan.TimeoutSeconds: "));
        Assert.That(errors, Has.Some.StartWith("Scan.MaxBytes: "));
        Assert.That(errors, Has.Some.StartWith("Scan.HoldScore: 6 must be below Scan.RejectScore (5)"));
        Assert.That(OptionsValidator.Validate(new InterceptorOptions()), Has.None.StartWith("Scan."), "the defaults are valid");
    }
}
