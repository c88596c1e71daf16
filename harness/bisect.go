package main

import "context"

func cmdBisectRun(ctx context.Context, args []string) int { return 128 }
