namespace Interceptor.Daemon.Commands;

public static class DemoCommand
{
    public static Task<int> RunAsync(Arguments arguments) => Task.FromResult(0);
}
