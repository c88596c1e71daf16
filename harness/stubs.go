package main

import "context"

func cmdCompare(ctx context.Context, args []string) int   { return exitError }
func cmdBisectRun(ctx context.Context, args []string) int { return exitError }
